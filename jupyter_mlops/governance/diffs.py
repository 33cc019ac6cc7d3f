"""Diffs between any two notebook versions: as data, as terminal text, as one HTML page.

The diff itself is :func:`jupyter_mlops.core.notebook_diff.diff_notebooks` (nbdime's
answer, faster). The ignore options are applied to copies of the two notebooks before
diffing, never through nbdime's global diff targets: two requests served at the same time
must not change each other's answer, and the ``base`` returned with the diff is then the
notebook the diff applies to.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_mlops.core.notebook_diff import Diff, diff_notebooks, in_memory_form
from jupyter_mlops.governance.notebook_versions import NotebookVersion, NotebookVersions

OUTPUT_FIELDS = ("outputs", "execution_count")


@dataclass(frozen=True)
class DiffOptions:
    """``ignore_outputs`` drops outputs and execution counts (what a re-execution changes);
    ``ignore_metadata`` drops notebook and cell metadata."""

    ignore_outputs: bool = False
    ignore_metadata: bool = False


@dataclass
class NotebookDiff:
    a: NotebookVersion
    b: NotebookVersion
    base: dict[str, Any]  # ``a`` as diffed: ignore options applied, multiline strings joined
    diff: Diff

    @property
    def identical(self) -> bool:
        return not self.diff

    def as_json(self) -> dict[str, Any]:
        """What ``GET /jupyter-mlops/api/diff`` and ``diff --json`` return."""
        return {
            "a": {"ref": self.a.ref, "label": self.a.label},
            "b": {"ref": self.b.ref, "label": self.b.label},
            "base": self.base,
            "diff": self.diff,
        }


def prepared(notebook: dict[str, Any], options: DiffOptions) -> dict[str, Any]:
    """A copy of ``notebook`` as it is diffed under ``options``."""
    nb = in_memory_form(copy.deepcopy(notebook))
    if options.ignore_metadata:
        nb["metadata"] = {}
    for cell in nb.get("cells", []):
        if options.ignore_metadata and "metadata" in cell:
            cell["metadata"] = {}
        if options.ignore_outputs and cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    return dict(nb)


def diff_pair(a: NotebookVersion, b: NotebookVersion, options: DiffOptions) -> NotebookDiff:
    base, remote = prepared(a.notebook, options), prepared(b.notebook, options)
    return NotebookDiff(a, b, base, diff_notebooks(base, remote))


def diff_refs(
    versions: NotebookVersions, a: str, b: str, options: DiffOptions | None = None
) -> NotebookDiff:
    """Resolve both references and diff them (the one entry point of the adapters)."""
    return diff_pair(versions.resolve(a), versions.resolve(b), options or DiffOptions())


def render_text(result: NotebookDiff, color: bool) -> str:
    """The diff as ``nbdiff`` prints it (without asking git or diff for the line diffs)."""
    from nbdime.prettyprint import PrettyPrintConfig, pretty_print_diff

    if result.identical:
        return ""
    out = io.StringIO()
    config = PrettyPrintConfig(out=out, use_git=False, use_diff=False, use_color=color)
    header = f"--- {result.a.label}\n+++ {result.b.label}\n"
    if color:
        header = f"\x1b[1m{header}\x1b[0m"
    out.write(header)
    pretty_print_diff(_nbnode(result.base), _nbnode(result.diff), "", config)
    return out.getvalue()


def _nbnode(value: Any) -> Any:
    """nbdime's printer reads outputs by attribute, as nbformat hands them over."""
    import nbformat

    if isinstance(value, list):
        return [_nbnode(v) for v in value]
    if isinstance(value, dict):
        return nbformat.from_dict(value)  # type: ignore[no-untyped-call]
    return value


def _script_json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element (no ``</script>``, no ``<!--``)."""
    return (
        json.dumps(value, ensure_ascii=False)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )


def _read(path: Path) -> str:
    """A script to inline, without its source-map comment (the map is not in the page)."""
    text = path.read_text(encoding="utf-8")
    return re.sub(r"^//# sourceMappingURL=.*$", "", text, flags=re.MULTILINE)


def _inline_script(code: str) -> str:
    """``<script>`` text as the browser hashes it: HTML parsing turns CR LF and CR into LF."""
    code = code.replace("\r\n", "\n").replace("\r", "\n")
    if "</script" in code.lower():  # would end the element early: never in nbdime's bundle
        raise ValueError("an inlined script contains </script")
    return code


def _csp_hash(code: str) -> str:
    digest = hashlib.sha256(code.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def _content_security_policy(scripts: list[str]) -> str:
    """Only the page's own scripts run; nothing is fetched, framed or submitted.

    The notebooks' outputs are rendered by nbdime through JupyterLab's sanitizer as
    untrusted; this policy is the second wall: a ``<script>``, an event handler, a
    ``javascript:`` URL, an ``eval`` (a JavaScript output rendered trusted) or a frame
    coming from a notebook is refused by the browser, and so is any remote image or
    request (the page works offline).
    """
    hashes = " ".join(_csp_hash(code) for code in scripts)
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {hashes}",
            "style-src 'unsafe-inline'",
            "img-src data: blob:",
            "font-src data:",
            "frame-src 'none'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)


#: Answers nbdime's ``POST api/diff`` from the page itself, so the page needs no server.
_FETCH_SHIM = """
(function () {
  var data = JSON.parse(document.getElementById('mlops-diff-data').textContent);
  var realFetch = window.fetch ? window.fetch.bind(window) : null;
  window.fetch = function (input, init) {
    var url = typeof input === 'string' ? input : (input && input.url) || '';
    if (url.indexOf('api/diff') !== -1) {
      return Promise.resolve(new Response(JSON.stringify(data), {
        status: 200, headers: {'Content-Type': 'application/json'}
      }));
    }
    return realFetch ? realFetch(input, init) : Promise.reject(new Error('offline page'));
  };
  // nbdime records the pair in the address bar; a file:// page may not change its URL.
  history.replaceState = function () {};
  history.pushState = function () {};
})();
"""


def render_html(result: NotebookDiff) -> str:
    """One self-contained page: nbdime's own web diff (its script inlined) on this diff."""
    import nbdime

    static = Path(nbdime.__file__).parent / "webapp" / "static"
    # The lazily loaded chunks (MathJax, editor languages) go in first: webpack's runtime
    # adopts chunks already pushed when it starts, so the page never fetches a file.
    chunks = sorted(static.glob("[0-9]*.nbdime.js"), key=lambda p: p.name)
    code = [_inline_script(_FETCH_SHIM)]
    code += [_inline_script(_read(path)) for path in [*chunks, static / "nbdime.js"]]
    shim, scripts = code[0], "\n".join(f"<script>{text}</script>" for text in code[1:])
    policy = _content_security_policy(code)
    config = {
        "base": result.a.label,
        "remote": result.b.label,
        "baseUrl": "/",
        "hideUnchanged": True,
    }
    a, b = _escape(result.a.label), _escape(result.b.label)
    return f"""<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8"/>
<meta http-equiv="Content-Security-Policy" content="{policy}"/>
<meta name="viewport" content="width=device-width, initial-scale=1.0"/>
<title>Notebook diff: {a} → {b}</title>
<style>#nbdime-diff-form {{ display: none; }} body {{ font-family: sans-serif; }}
/* outputs stay untrusted: no per-output "Trust" button (the policy refuses scripts anyway) */
.jp-Diff-trustOutputButton {{ display: none !important; }}</style>
</head>
<body>
<div id="nbdime-header" class="nbdime-Diff">
  <h3>Notebook diff: {a} → {b}</h3>
  <p class="mlops-diff-generated">Written by jupyter-mlops with nbdime's web diff.</p>
  <form id="nbdime-diff-form" class="nbdime-forms">
    <input id="diff-base" type="hidden" value="{a}"/>
    <input id="diff-remote" type="hidden" value="{b}"/>
  </form>
  <div id="nbdime-header-buttonrow">
    <label><input id="nbdime-hide-unchanged" type="checkbox"/>Hide unchanged cells</label>
    <button id="nbdime-trust" style="display: none">Trust outputs</button>
    <button id="nbdime-close" style="display: none">Close tool</button>
    <button id="nbdime-export" style="display: none">Export diff</button>
  </div>
  <div id="nbdime-header-banner" class="cm-merge-2pane">
    <span id="nbdime-header-base">{a}</span>
    <span id="nbdime-header-remote">{b}</span>
  </div>
</div>
<div id="nbdime-root" class="nbdime-root"></div>
<script id="nbdime-config-data" type="application/json">{_script_json(config)}</script>
<script id="mlops-diff-data" type="application/json">{
        _script_json({"base": result.base, "diff": result.diff})
    }</script>
<script>{shim}</script>
{scripts}
</body>
</html>
"""
