"""Serving a run's artifact to a browser: which path may be asked for, and how it is sent.

An artifact is whatever a notebook wrote, so it is untrusted content served from the
Jupyter server's own origin. The rules here keep it inert:

* the path is relative to the run's artifact root, in ``/`` form, with no ``..``, empty or
  ``.`` segment, no backslash, no URL scheme and no control character;
* only a short list of passive types is sent with its own ``Content-Type``; HTML, SVG, XML
  and anything unknown go out as ``application/octet-stream``;
* active types (HTML, SVG, XML) are always an attachment, whatever the query says, and the
  server adds ``X-Content-Type-Options: nosniff`` and ``Content-Security-Policy: sandbox``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from jupyter_mlops.core.errors import UsageError

#: The largest artifact the server reads into memory to send (bytes).
MAX_ARTIFACT_BYTES = 200 * 1024 * 1024
MAX_ARTIFACT_PATH = 1024

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: Passive types: a browser shows them and runs nothing in them.
SAFE_TYPES: dict[str, str] = {
    ".json": "application/json",
    ".jsonl": "text/plain; charset=utf-8",
    ".ipynb": "application/x-ipynb+json",
    ".txt": "text/plain; charset=utf-8",
    ".log": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    ".py": "text/plain; charset=utf-8",
    ".yaml": "text/plain; charset=utf-8",
    ".yml": "text/plain; charset=utf-8",
    ".toml": "text/plain; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".tsv": "text/tab-separated-values; charset=utf-8",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
#: Types a browser would execute (scripts in HTML, SVG, XHTML): always downloaded, never shown.
ACTIVE_SUFFIXES = frozenset(
    {".html", ".htm", ".xhtml", ".shtml", ".svg", ".svgz", ".xml", ".xsl", ".xslt", ".mht"}
)
OPAQUE_TYPE = "application/octet-stream"


def check_artifact_path(text: str | None) -> str:
    """``text`` as a run-relative artifact path, else a ``UsageError`` saying what is wrong."""
    if text is None or not text.strip():
        raise UsageError("the query needs the parameter 'path' (an artifact path of the run)")
    if len(text) > MAX_ARTIFACT_PATH:
        raise UsageError(f"an artifact path has at most {MAX_ARTIFACT_PATH} characters")
    if _CONTROL.search(text):
        raise UsageError("an artifact path cannot contain NUL or control characters")
    if "\\" in text:
        raise UsageError("an artifact path uses '/' between folders, not '\\'")
    if _SCHEME.match(text):
        raise UsageError(f"{text!r} is a URL; give a path inside the run's artifacts")
    if text.startswith("/"):
        raise UsageError(f"{text!r} is absolute; give a path relative to the run's artifacts")
    parts = text.split("/")
    if ".." in parts:
        raise UsageError(f"{text!r} leaves the run's artifacts ('..')")
    if any(part in ("", ".") for part in parts):
        raise UsageError(f"{text!r} has an empty or '.' folder; write it as the run lists it")
    return text


def _suffix(path: str) -> str:
    name = path.rpartition("/")[2]
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def is_active(path: str) -> bool:
    """Whether a browser would run code in this artifact if it showed it."""
    return _suffix(path) in ACTIVE_SUFFIXES


@dataclass(frozen=True)
class ArtifactResponse:
    """The headers an artifact is sent with."""

    content_type: str
    disposition: str

    @property
    def attachment(self) -> bool:
        return self.disposition.startswith("attachment")


def content_disposition(kind: str, filename: str) -> str:
    """``kind; filename="…"; filename*=UTF-8''…`` (RFC 6266 and 5987).

    The quoted form is plain ASCII with quotes, backslashes and anything non-printable
    replaced, for old clients; ``filename*`` carries the real name.
    """
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\;' else "_" for c in filename)
    header = f'{kind}; filename="{fallback or "artifact"}"'
    if fallback != filename:
        header += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return header


def artifact_response(path: str, download: bool) -> ArtifactResponse:
    """How to send ``path``: its type if passive, and whether it must be saved, not shown."""
    suffix = _suffix(path)
    content_type = SAFE_TYPES.get(suffix, OPAQUE_TYPE)
    attachment = download or suffix in ACTIVE_SUFFIXES or content_type == OPAQUE_TYPE
    name = path.rpartition("/")[2]
    return ArtifactResponse(
        content_type, content_disposition("attachment" if attachment else "inline", name)
    )
