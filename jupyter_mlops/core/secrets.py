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

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

MASK = "***MASKED***"
#: Names of variables whose values are secret. ``auth`` but not ``author``: GIT_AUTHOR_NAME
#: holds a person's name, which must stay readable in every snapshot.
SECRET_NAME = re.compile(
    r"(?i)(secret|token|passw(or)?d|pwd|api[_-]?key|access[_-]?key|private[_-]?key"
    r"|credential|auth(?!or))"
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
#: Which lines the detector must scan. Its plugins find either a keyword assignment (the
#: keyword plugin; values may hold spaces: any line with such a word is scanned), or a
#: token: a run of token characters, at least MIN_SECRET_LENGTH long for us to mask it,
#: with a letter in it (digits alone never reach the entropy limit, and every token
#: pattern has letters). A run of letters, underscores and dashes alone (``batch_size``,
#: ``--no-snapshot``; every token pattern shorter than 20 has a digit, a dot or a fixed
#: prefix) is a token only from 20 characters on (the entropy plugin, for which we
#: mask MIN_ENTROPY_SECRET_LENGTH and more) or with Artifactory's ``AKC``/``AP`` prefixes.
#: Every other line skips the detector, which is the costly part of masking.
TOKEN_RUN = re.compile(rf"[A-Za-z0-9+/=_.:@~-]{{{MIN_SECRET_LENGTH},}}")
LETTER = re.compile(r"[A-Za-z]")
IDENTIFIER = re.compile(r"[A-Za-z_-]+")
KEYWORD_WORDS = ("key", "pass", "pwd", "secret", "contrase", "token", "auth", "cred")
KEYWORDS = re.compile("(?i)" + "|".join(KEYWORD_WORDS))


def _token_like(run: str) -> bool:
    if not LETTER.search(run):
        return False
    if IDENTIFIER.fullmatch(run):
        return len(run) >= MIN_ENTROPY_SECRET_LENGTH or run.startswith(("AKC", "AP"))
    return True


def _has_keyword(text: str) -> bool:
    """``KEYWORDS.search(text)``, which tries every position: for ASCII text (where
    ignoring case is lowering it) a few substring tests give the same answer ten times
    faster."""
    if text.isascii():
        lowered = text.lower()
        return any(word in lowered for word in KEYWORD_WORDS)
    return KEYWORDS.search(text) is not None


def may_hold_secret(line: str) -> bool:
    """False only for lines in which detect-secrets cannot find anything we would mask."""
    if _has_keyword(line):
        return True
    return any(_token_like(run.group()) for run in TOKEN_RUN.finditer(line))


@lru_cache(maxsize=4096)
def _secret_name(name: str) -> bool:
    """Whether a param's name looks secret; cached, as every tracked cell asks again."""
    return SECRET_NAME.search(name) is not None


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


@contextlib.contextmanager
def _detector_settings() -> Iterator[None]:
    """detect-secrets configured with our plugins; ``_detector_findings`` runs inside it."""
    from detect_secrets.settings import transient_settings

    with transient_settings({"plugins_used": _detect_secrets_settings()}):
        yield


def _scan(line: str) -> list[tuple[str, str]]:
    """``(kind, value)`` of everything detect-secrets' ad-hoc scan reports for ``line``."""
    from detect_secrets.core.scan import scan_line

    return [(str(secret.type), secret.secret_value or "") for secret in scan_line(line)]


def _masked_finding(kind: str, value: str) -> bool:
    """Whether the masker masks a finding: long enough, and not a hex id or hash."""
    minimum = MIN_ENTROPY_SECRET_LENGTH if "Entropy" in kind else MIN_SECRET_LENGTH
    return len(value) >= minimum and not ("Entropy" in kind and HEX_ONLY.fullmatch(value))


def _detector_findings(line: str) -> list[tuple[str, str]]:
    """``(kind, value)`` of what detect-secrets finds in ``line``, minus what we never mask."""
    return [(kind, value) for kind, value in _scan(line) if _masked_finding(kind, value)]


class SecretMasker:
    """Masks secrets in text, remembering lines it has seen (snapshots repeat most lines)."""

    def __init__(self, environ: Mapping[str, str] | None = None, use_detector: bool = True) -> None:
        self.env_values = secret_env_values(environ)
        self.use_detector = use_detector
        self.masked_count = 0
        self._line_cache: dict[str, tuple[str, int]] = {}
        self._settings_open = False

    def _detected(self, line: str) -> list[str]:
        if self._settings_open:
            found = [value for _kind, value in _detector_findings(line)]
        else:
            with _detector_settings():
                found = [value for _kind, value in _detector_findings(line)]
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
        if self.use_detector and masked.strip() and may_hold_secret(masked):
            for value in self._detected(masked):
                if value in masked and value not in MASK:
                    count += masked.count(value)
                    masked = masked.replace(value, MASK)
        if len(self._line_cache) > 50_000:
            self._line_cache.clear()
        self._line_cache[line] = (masked, count)
        return masked, count

    def _may_hold_any(self, text: str) -> bool:
        """False only when no line of ``text`` holds anything ``_mask_line`` would mask.

        Each test gives, on the whole text, what it gives on any of its lines: no pattern
        here matches across a line break, and an environment value absent from the text
        is absent from each line. Most cell sources and params pass in a few microseconds
        instead of a line-by-line scan.
        """
        return (
            any(value in text for value in self.env_values)
            or ("://" in text and "@" in text and URL_PASSWORD.search(text) is not None)
            or ("=" in text and URL_QUERY_SECRET.search(text) is not None)
            or (self.use_detector and may_hold_secret(text))
        )

    def mask(self, text: str) -> str:
        """``text`` with every secret replaced by the mask; counts into ``masked_count``."""
        if not text:
            return text
        cached = self._line_cache.get(text)  # a one-line text seen before
        if cached is not None:
            self.masked_count += cached[1]
            return cached[0]
        if not self._may_hold_any(text):
            return text
        lines = text.splitlines(keepends=True)
        # Opening detect-secrets' settings costs more than scanning a line: once per text,
        # and only when a line not seen before is one the detector must scan.
        fresh = self.use_detector and any(
            line not in self._line_cache and may_hold_secret(line) for line in lines
        )
        out = []
        with _detector_settings() if fresh else contextlib.nullcontext():
            self._settings_open = fresh
            try:
                for line in lines:
                    masked, count = self._mask_line(line)
                    self.masked_count += count
                    out.append(masked)
            finally:
                self._settings_open = False
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
        if _secret_name(name) and value not in (None, "", True, False):
            self.masked_count += 1
            return MASK
        return self.mask_value(value)


# -- reporting where secrets are, for ``jupyter mlops check`` ---------------------------
@dataclass(frozen=True)
class SecretHit:
    """A kind of secret on a line of a text (1-based); never the secret itself."""

    kind: str
    line: int


#: Kinds detect-secrets found per line, shared by every ``find_secrets`` call of a process.
_kinds_cache: dict[str, tuple[str, ...]] = {}


KEYWORD_KIND = "Secret Keyword"


def _line_kinds(lines: set[str]) -> dict[str, tuple[str, ...]]:
    """The kinds of secret on each line, for a report (one detect-secrets settings block).

    The masker's findings, judged for a check that fails a commit rather than for masking:

    * the entropy plugins count only for a quoted string above their entropy limit, as in
      detect-secrets' file scans. The ad-hoc scan the masker uses also returns every
      unquoted word without the limit (``/home/alice/data/raw``, URLs in an HTML repr);
    * a provider's token format (AWS, GitHub, Slack, Stripe, private key...) counts whatever
      the length of the value reported: for a GitHub token that value is just ``ghp``;
    * keyword findings (``password = "..."``) keep the masker's 8-character minimum.
    """
    missing = [line for line in lines if line not in _kinds_cache]
    if missing:
        from detect_secrets.settings import get_plugins

        if len(_kinds_cache) + len(missing) > 50_000:
            _kinds_cache.clear()
        with _detector_settings():
            entropy_plugins = {
                str(plugin.secret_type): plugin
                for plugin in get_plugins()
                if hasattr(plugin, "entropy_limit")
            }
            for line in missing:
                kinds = []
                if URL_PASSWORD.search(line):
                    kinds.append("password in a URL")
                if URL_QUERY_SECRET.search(line):
                    kinds.append("secret in a URL query")
                for kind, value in _scan(line) if line.strip() else []:
                    plugin = entropy_plugins.get(kind)
                    if plugin is not None:
                        quoted = f'"{value}"' in line or f"'{value}'" in line
                        if not (
                            quoted
                            and _masked_finding(kind, value)
                            and plugin.calculate_shannon_entropy(value) > plugin.entropy_limit
                        ):
                            continue
                    elif kind == KEYWORD_KIND and not _masked_finding(kind, value):
                        continue
                    kinds.append(kind)
                _kinds_cache[line] = tuple(dict.fromkeys(kinds))
    return {line: _kinds_cache[line] for line in lines}


def find_secrets(text: str, environ: Mapping[str, str] | None = None) -> list[SecretHit]:
    """Where ``text`` holds a secret, by kind and line: the report ``jupyter mlops check`` makes.

    Same detection as ``SecretMasker`` (URL passwords and query secrets, detect-secrets with
    the same plugins), with findings judged as ``_line_kinds`` says. Unlike the masker,
    environment values are looked for only when ``environ`` is given (a check's result
    should not depend on who runs it); their kind names the variable, never the value.
    """
    if not text:
        return []
    lines = text.splitlines()
    kinds = _line_kinds(set(lines))
    env_items = [
        (name, value)
        for name, value in (environ or {}).items()
        if SECRET_NAME.search(name) and len(value) >= MIN_ENV_SECRET_LENGTH
    ]
    hits: dict[tuple[str, int], None] = {}
    for number, line in enumerate(lines, start=1):
        for name, value in env_items:
            if value in line:
                hits[(f"value of the environment variable {name}", number)] = None
        for kind in kinds[line]:
            hits[(kind, number)] = None
    return [SecretHit(kind, line) for kind, line in sorted(hits, key=lambda hit: hit[1])]
