"""Mask what looks like a secret before anything leaves the kernel.

Policy (docs/magics.md repeats it):

* the values of environment variables whose *names* look secret (``*TOKEN*``,
  ``*SECRET*``, ``*PASSWORD*``, ``*API_KEY*``, ``MLFLOW_TRACKING_PASSWORD``...), wherever
  they appear;
* passwords and tokens in URLs (``https://user:pw@host``, ``?token=...``);
* what detect-secrets' plugins find (AWS, GitHub, Slack, Stripe, JWT, private keys,
  ``password = "..."`` keywords, base64 high-entropy strings...), minus its hex-entropy
  plugin and hex-only entropy findings (run ids and content hashes), and minus findings
  shorter than 8 characters (it flags words such as "Bearer").

Each masked value becomes ``***MASKED***``; the caller counts them for a run tag.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

MASK = "***MASKED***"
SECRET_NAME = re.compile(
    r"(?i)(secret|token|passw(or)?d|pwd|api[_-]?key|access[_-]?key|private[_-]?key|credential|auth)"
)
URL_PASSWORD = re.compile(
    r"(?P<prefix>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:)(?P<secret>[^@\s/]+)@"
)
URL_QUERY_SECRET = re.compile(
    r"(?P<prefix>[?&](?:token|access_token|api_key|apikey|key|secret|password|sig|signature)=)"
    r"(?P<secret>[^&\s#\"']+)",
    re.IGNORECASE,
)
MIN_SECRET_LENGTH = 8
MIN_ENV_SECRET_LENGTH = 4
MIN_ENTROPY_SECRET_LENGTH = 20
SKIPPED_PLUGINS = {"HexHighEntropyString"}
#: Hex-only strings are run ids and content hashes; the entropy plugins would mask them all.
HEX_ONLY = re.compile(r"[0-9a-fA-F]+")


def secret_env_values(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Values of environment variables whose names look secret, longest first."""
    env = os.environ if environ is None else environ
    values = {
        value
        for name, value in env.items()
        if SECRET_NAME.search(name) and len(value) >= MIN_ENV_SECRET_LENGTH
    }
    return tuple(sorted(values, key=len, reverse=True))


@lru_cache(maxsize=1)
def _detect_secrets_settings() -> list[dict[str, Any]]:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    plugins: list[dict[str, Any]] = []
    plugin_class: Any
    for plugin_class in get_mapping_from_secret_type_to_class().values():
        if plugin_class.__name__ in SKIPPED_PLUGINS:
            continue
        config: dict[str, Any] = {"name": plugin_class.__name__}
        if plugin_class.__name__ == "Base64HighEntropyString":
            config["limit"] = 4.5
        plugins.append(config)
    return plugins


class SecretMasker:
    """Masks secrets in text, remembering lines it has seen (snapshots repeat most lines)."""

    def __init__(self, environ: Mapping[str, str] | None = None, use_detector: bool = True) -> None:
        self.env_values = secret_env_values(environ)
        self.use_detector = use_detector
        self.masked_count = 0
        self._line_cache: dict[str, tuple[str, int]] = {}

    def _detected(self, line: str) -> list[str]:
        from detect_secrets.core.scan import scan_line
        from detect_secrets.settings import transient_settings

        with transient_settings({"plugins_used": _detect_secrets_settings()}):
            found = []
            for secret in scan_line(line):
                value = secret.secret_value or ""
                minimum = (
                    MIN_ENTROPY_SECRET_LENGTH if "Entropy" in secret.type else MIN_SECRET_LENGTH
                )
                if len(value) >= minimum and not (
                    "Entropy" in secret.type and HEX_ONLY.fullmatch(value)
                ):
                    found.append(value)
        return sorted(set(found), key=len, reverse=True)

    def _mask_line(self, line: str) -> tuple[str, int]:
        cached = self._line_cache.get(line)
        if cached is not None:
            return cached
        count = 0
        masked = line
        for value in self.env_values:
            if value in masked:
                count += masked.count(value)
                masked = masked.replace(value, MASK)
        for pattern in (URL_PASSWORD, URL_QUERY_SECRET):
            masked, n = pattern.subn(lambda m: f"{m.group('prefix')}{MASK}", masked)
            count += n
        if self.use_detector and masked.strip():
            for value in self._detected(masked):
                if value in masked and value not in MASK:
                    count += masked.count(value)
                    masked = masked.replace(value, MASK)
        if len(self._line_cache) > 50_000:
            self._line_cache.clear()
        self._line_cache[line] = (masked, count)
        return masked, count

    def mask(self, text: str) -> str:
        """``text`` with every secret replaced by the mask; counts into ``masked_count``."""
        if not text:
            return text
        out = []
        for line in text.splitlines(keepends=True):
            masked, count = self._mask_line(line)
            self.masked_count += count
            out.append(masked)
        return "".join(out)

    def mask_value(self, value: Any) -> Any:
        """Mask strings inside a JSON-like value (params, cell records)."""
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, list | tuple):
            return type(value)(self.mask_value(v) for v in value)
        if isinstance(value, dict):
            return {k: self.mask_value(v) for k, v in value.items()}
        return value

    def mask_param(self, name: str, value: Any) -> Any:
        """A param whose name looks secret is masked whole, whatever its value."""
        if SECRET_NAME.search(name) and value not in (None, "", True, False):
            self.masked_count += 1
            return MASK
        return self.mask_value(value)
