"""What ``jupyter mlops status`` and ``GET /jupyter-mlops/api/status`` report."""

from __future__ import annotations

from typing import Any

from jupyter_mlops._version import __version__
from jupyter_mlops.core.settings import TrackingLocation, redact_uri
from jupyter_mlops.tracking.health import probe_store


def collect_status(location: TrackingLocation, timeout: float = 2.0) -> dict[str, Any]:
    """The package version, the resolved tracking location and whether its store answers.

    The URI is shown with any credentials removed: this goes to a browser and a terminal.
    """
    tracking = location.to_json()
    tracking["uri"] = redact_uri(location.uri)
    return {
        "version": __version__,
        "tracking": tracking,
        "store": probe_store(location, timeout).to_json(),
    }
