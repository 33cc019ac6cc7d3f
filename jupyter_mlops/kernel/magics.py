"""IPython magics: the kernel adapter. Parses magic lines and calls the tracking core."""

from __future__ import annotations

from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class

from jupyter_mlops.core.errors import MlopsError


@magics_class
class MlopsMagics(Magics):
    """``%mlops_track`` and friends."""

    @line_magic
    def mlops_track(self, line: str) -> None:
        """``%mlops_track status``: where this kernel would track to."""
        from jupyter_mlops.core.settings import resolve_tracking_location

        words = line.split()
        if words and words[0] != "status":
            print(f"mlops_track: unknown subcommand {words[0]!r}; try: status")
            return
        try:
            location = resolve_tracking_location()
        except MlopsError as error:
            print(f"mlops_track: {error}")
            return
        print(f"mlops: tracking at {location.uri} ({location.source}: {location.detail})")


def register(ipython: Any) -> None:
    ipython.register_magics(MlopsMagics)


def unregister(ipython: Any) -> None:
    """IPython has no magic removal API; nothing to flush yet."""
