"""``jupyter mlops check``: rules over a notebook's JSON, and the fixes that are safe.

Every rule is on by default; ``[tool.jupyter-mlops.check]`` in the project's
``pyproject.toml`` turns rules off and sets their options (docs/check.md lists them):

* ``execution-order``: code cells ran in an order other than top to bottom;
* ``not-executed``: a code cell never ran while others did;
* ``error-output``: an error (a traceback) is saved in the outputs;
* ``output-size``: one output is larger than ``output_size_kb``;
* ``secret``: the run masker's detection (``core/secrets.find_secrets``: URL passwords,
  detect-secrets' plugins) finds a secret in a cell's source or an output's decoded text;
* ``no-parameters-cell``: a pipeline notebook has no cell tagged ``parameters``;
* ``absolute-path``: a string in code names a machine-specific absolute path.

``fix_notebook`` only removes outputs: error outputs, outputs over the size limit and
outputs that hold a secret. Removing an output never changes what the notebook computes.
It never touches sources, metadata or execution counts: renumbering counts would hide the
very order problem the counts record, and only re-running the notebook can fix order.

Rules are pure functions of the notebook dict and the config; only finding which
notebooks are pipeline steps reads files (``mlops.yaml`` and ``pyproject.toml``).
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_mlops.core.errors import ConfigError
from jupyter_mlops.core.parameters import PARAMETERS_TAG, declared_parameters
from jupyter_mlops.core.secrets import SecretMasker, find_secrets
from jupyter_mlops.core.snapshot import TEXT_MIMETYPES

EXECUTION_ORDER = "execution-order"
NOT_EXECUTED = "not-executed"
ERROR_OUTPUT = "error-output"
OUTPUT_SIZE = "output-size"
SECRET = "secret"  # noqa: S105 (a rule id, not a password)
NO_PARAMETERS_CELL = "no-parameters-cell"
ABSOLUTE_PATH = "absolute-path"


@dataclass(frozen=True)
class Rule:
    id: str
    default: bool
    fixable: bool
    summary: str


RULES: dict[str, Rule] = {
    rule.id: rule
    for rule in (
        Rule(EXECUTION_ORDER, True, False, "code cells ran in an order other than top to bottom"),
        Rule(NOT_EXECUTED, True, False, "a code cell never ran while others did"),
        Rule(ERROR_OUTPUT, True, True, "an error output (traceback) is saved"),
        Rule(OUTPUT_SIZE, True, True, "an output is larger than output_size_kb"),
        Rule(SECRET, True, True, "a secret in a source or in the text of an output"),
        Rule(NO_PARAMETERS_CELL, True, False, "a pipeline notebook has no 'parameters' cell"),
        Rule(ABSOLUTE_PATH, True, False, "a hard-coded machine-specific absolute path in code"),
    )
}
FIXABLE = tuple(rule.id for rule in RULES.values() if rule.fixable)

CONFIG_TABLE = "check"
DEFAULT_OUTPUT_SIZE_KB = 500.0
DEFAULT_PIPELINE_NOTEBOOKS = ("pipelines/**/*.ipynb",)
#: Folders whose paths differ from machine to machine. ``/tmp`` is not one: it exists on
#: every POSIX machine and CI runner, so ``/tmp/scratch.csv`` works everywhere it runs.
DEFAULT_ABSOLUTE_PATH_PREFIXES = (
    "/home/",
    "/Users/",
    "/root/",
    "/mnt/",
    "/media/",
    "/Volumes/",
    "/data/",
    "/opt/",
    "/srv/",
    "/scratch/",
)
EXECUTION_ORDER_MODES = ("increasing", "consecutive")
PIPELINE_FILE = "mlops.yaml"


@dataclass(frozen=True)
class CheckConfig:
    """What ``[tool.jupyter-mlops.check]`` says; the defaults are the documented ones."""

    disable: frozenset[str] = frozenset()
    fix: frozenset[str] = frozenset(FIXABLE)
    output_size_kb: float = DEFAULT_OUTPUT_SIZE_KB
    pipeline_notebooks: tuple[str, ...] = DEFAULT_PIPELINE_NOTEBOOKS
    absolute_path_prefixes: tuple[str, ...] = DEFAULT_ABSOLUTE_PATH_PREFIXES
    allow_unexecuted_notebooks: bool = True
    execution_order: str = "increasing"
    secrets_from_environment: bool = False
    #: The folder globs and mlops.yaml paths are relative to; None: the working directory.
    project_root: Path | None = None

    def enabled(self, rule: str) -> bool:
        return rule not in self.disable and RULES[rule].default


def _rule_list(value: Any, key: str, source: str, allowed: Sequence[str]) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{source}: {key} must be a list of rule ids")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{source}: {key} names unknown rule{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)} (known: {', '.join(allowed)})"
        )
    return frozenset(value)


def _string_list(value: Any, key: str, source: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{source}: {key} must be a list of non-empty strings")
    return tuple(value)


def _bool(value: Any, key: str, source: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{source}: {key} must be true or false")
    return value


def parse_check_config(
    table: Mapping[str, Any], source: str, project_root: Path | None = None
) -> CheckConfig:
    """A ``CheckConfig`` from the ``[tool.jupyter-mlops.check]`` table; unknown keys refused."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source}: [tool.jupyter-mlops.{CONFIG_TABLE}] must be a table")
    known = {name for name in CheckConfig.__dataclass_fields__ if name != "project_root"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"{source}: [tool.jupyter-mlops.{CONFIG_TABLE}] has unknown "
            f"key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"(known: {', '.join(sorted(known))})"
        )
    values: dict[str, Any] = {"project_root": project_root}
    if "disable" in table:
        values["disable"] = _rule_list(table["disable"], "disable", source, list(RULES))
    if "fix" in table:
        values["fix"] = _rule_list(table["fix"], "fix", source, FIXABLE)
    if "output_size_kb" in table:
        size = table["output_size_kb"]
        if isinstance(size, bool) or not isinstance(size, int | float) or size <= 0:
            raise ConfigError(f"{source}: output_size_kb must be a positive number of KB")
        values["output_size_kb"] = float(size)
    if "pipeline_notebooks" in table:
        values["pipeline_notebooks"] = _string_list(
            table["pipeline_notebooks"], "pipeline_notebooks", source
        )
    if "absolute_path_prefixes" in table:
        values["absolute_path_prefixes"] = _string_list(
            table["absolute_path_prefixes"], "absolute_path_prefixes", source
        )
    for key in ("allow_unexecuted_notebooks", "secrets_from_environment"):
        if key in table:
            values[key] = _bool(table[key], key, source)
    if "execution_order" in table:
        if table["execution_order"] not in EXECUTION_ORDER_MODES:
            raise ConfigError(
                f"{source}: execution_order must be one of {', '.join(EXECUTION_ORDER_MODES)}"
            )
        values["execution_order"] = table["execution_order"]
    return CheckConfig(**values)


def load_check_config(project_root: Path) -> CheckConfig:
    """The check config of the project whose root is ``project_root`` (defaults if none)."""
    from jupyter_mlops.core.settings import load_project_config

    table = load_project_config(project_root).get(CONFIG_TABLE, {})
    return parse_check_config(table, str(project_root / "pyproject.toml"), project_root)


# -- findings ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Finding:
    """One problem: ``cell_index`` and ``output_index`` are 0-based, None for the notebook."""

    file: str
    cell_index: int | None
    cell_id: str | None
    rule: str
    message: str
    output_index: int | None = None

    @property
    def fixable(self) -> bool:
        return RULES[self.rule].fixable and self.output_index is not None

    def location(self) -> str:
        """``path:cell 3 [id]`` (1-based cell number, as a reader counts) or ``path``."""
        if self.cell_index is None:
            return self.file
        cell_id = f" [{self.cell_id}]" if self.cell_id else ""
        return f"{self.file}:cell {self.cell_index + 1}{cell_id}"

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "cell": None if self.cell_index is None else self.cell_index + 1,
            "cell_index": self.cell_index,
            "cell_id": self.cell_id,
            "rule": self.rule,
            "message": self.message,
            "output": None if self.output_index is None else self.output_index + 1,
            "fixable": self.fixable,
        }


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return value if isinstance(value, str) else ""


def _code_cells(nb: Mapping[str, Any]) -> Iterator[tuple[int, dict[str, Any]]]:
    for index, cell in enumerate(nb.get("cells", [])):
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            yield index, cell


def _cell_id(cell: Mapping[str, Any]) -> str | None:
    cell_id = cell.get("id")
    return cell_id if isinstance(cell_id, str) else None


def _count(cell: Mapping[str, Any]) -> int | None:
    count = cell.get("execution_count")
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def _outputs(cell: Mapping[str, Any]) -> list[dict[str, Any]]:
    outputs = cell.get("outputs") or []
    return [o for o in outputs if isinstance(o, dict)] if isinstance(outputs, list) else []


FindingMaker = Callable[..., Finding]


# -- execution-order and not-executed ----------------------------------------------------
def check_execution_order(
    nb: Mapping[str, Any], config: CheckConfig, make: FindingMaker
) -> list[Finding]:
    findings = []
    previous: tuple[int, int] | None = None  # (count, cell index) of the latest-running cell above
    for index, cell in _code_cells(nb):
        count = _count(cell)
        if count is None:
            continue
        if previous is not None and count <= previous[0]:
            findings.append(
                make(
                    index,
                    cell,
                    EXECUTION_ORDER,
                    f"ran as In [{count}], before cell {previous[1] + 1} above it "
                    f"(In [{previous[0]}]): the outputs are not from a top-to-bottom run",
                )
            )
        elif config.execution_order == "consecutive" and count != (previous or (0, 0))[0] + 1:
            if previous is None:
                message = f"the first executed cell ran as In [{count}], not In [1]"
            else:
                message = f"ran as In [{count}] after In [{previous[0]}] of cell {previous[1] + 1}"
            findings.append(
                make(
                    index,
                    cell,
                    EXECUTION_ORDER,
                    f"{message}: cells ran more than once or were deleted, not one "
                    "top-to-bottom run in a fresh kernel (execution_order = consecutive)",
                )
            )
        if previous is None or count > previous[0]:
            previous = (count, index)
    return findings


def check_not_executed(
    nb: Mapping[str, Any], config: CheckConfig, make: FindingMaker
) -> list[Finding]:
    cells = [(i, c) for i, c in _code_cells(nb) if _text(c.get("source")).strip()]
    executed = any(_count(c) is not None for _, c in cells)
    if not executed and config.allow_unexecuted_notebooks:
        return []  # a notebook saved without outputs (nbstripout) is consistent
    why = "while other cells ran" if executed else "(allow_unexecuted_notebooks = false)"
    return [
        make(index, cell, NOT_EXECUTED, f"never executed {why}")
        for index, cell in cells
        if _count(cell) is None
    ]


# -- error-output and output-size --------------------------------------------------------
ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_evalue_masker = SecretMasker(environ={})


def check_error_outputs(
    nb: Mapping[str, Any], config: CheckConfig, make: FindingMaker
) -> list[Finding]:
    findings = []
    for index, cell in _code_cells(nb):
        for number, output in enumerate(_outputs(cell)):
            if output.get("output_type") != "error":
                continue
            ename = str(output.get("ename") or "error")
            evalue = ANSI_ESCAPE.sub("", str(output.get("evalue") or "")).strip()
            first = _evalue_masker.mask(evalue.splitlines()[0]) if evalue else ""
            if len(first) > 100:
                first = first[:97] + "..."
            findings.append(
                make(
                    index,
                    cell,
                    ERROR_OUTPUT,
                    f"output {number + 1} is a saved error: {ename}"
                    + (f": {first}" if first else ""),
                    number,
                )
            )
    return findings


def output_size(output: Mapping[str, Any]) -> int:
    """The output's size in bytes as the notebook file stores it (compact JSON, UTF-8)."""
    return len(json.dumps(output, ensure_ascii=False, separators=(",", ":")).encode())


def _output_kind(output: Mapping[str, Any]) -> str:
    data = output.get("data")
    if isinstance(data, dict) and data:
        return str(max(data, key=lambda mime: len(json.dumps(data[mime]))))
    return str(output.get("output_type") or "output")


def check_output_size(
    nb: Mapping[str, Any], config: CheckConfig, make: FindingMaker
) -> list[Finding]:
    limit = config.output_size_kb * 1024
    findings = []
    for index, cell in _code_cells(nb):
        for number, output in enumerate(_outputs(cell)):
            size = output_size(output)
            if size > limit:
                findings.append(
                    make(
                        index,
                        cell,
                        OUTPUT_SIZE,
                        f"output {number + 1} ({_output_kind(output)}) is {size / 1024:.0f} KB, "
                        f"over the {config.output_size_kb:g} KB limit",
                        number,
                    )
                )
    return findings


# -- secret ------------------------------------------------------------------------------
def output_texts(output: Mapping[str, Any]) -> list[str]:
    """An output's decoded text: stream text, text-like data, an error's value and traceback."""
    texts = [_text(output.get("text"))]
    data = output.get("data")
    if isinstance(data, dict):
        for mime in TEXT_MIMETYPES:
            value = data.get(mime)
            if isinstance(value, str | list) and mime != "application/json":
                texts.append(_text(value))
            elif value is not None:
                texts.append(json.dumps(value, ensure_ascii=False, indent=1))
    if output.get("output_type") == "error":
        texts.append(str(output.get("evalue") or ""))
        traceback = output.get("traceback")
        if isinstance(traceback, list):
            texts.append(ANSI_ESCAPE.sub("", "\n".join(str(line) for line in traceback)))
    return [text for text in texts if text]


def _kinds(text: str, environ: Mapping[str, str] | None) -> tuple[list[str], list[int]]:
    hits = find_secrets(text, environ)
    return list(dict.fromkeys(hit.kind for hit in hits)), sorted({hit.line for hit in hits})


def check_secrets(
    nb: Mapping[str, Any],
    config: CheckConfig,
    make: FindingMaker,
    environ: Mapping[str, str] | None = None,
) -> list[Finding]:
    env = environ if config.secrets_from_environment else None
    findings = []
    for index, cell in enumerate(nb.get("cells", [])):
        if not isinstance(cell, dict):
            continue
        kinds, lines = _kinds(_text(cell.get("source")), env)
        if kinds:
            where = ", ".join(str(n) for n in lines[:5]) + (", ..." if len(lines) > 5 else "")
            findings.append(
                make(
                    index,
                    cell,
                    SECRET,
                    f"{', '.join(kinds)} in the source (line{'s' if len(lines) > 1 else ''} "
                    f"{where}): remove it, and rotate it if it was ever committed or shared",
                )
            )
        for number, output in enumerate(_outputs(cell)):
            found: list[str] = []
            for text in output_texts(output):
                found += _kinds(text, env)[0]
            if found:
                findings.append(
                    make(
                        index,
                        cell,
                        SECRET,
                        f"{', '.join(dict.fromkeys(found))} in output {number + 1} "
                        f"({output.get('output_type', 'output')})",
                        number,
                    )
                )
    return findings


# -- absolute-path -----------------------------------------------------------------------
WINDOWS_PATH = re.compile(r"(?:[A-Za-z]:[\\/]|\\\\[^\\/\s]+[\\/])")
#: Candidate paths in shell-like text (magics, ``!`` lines, ``%%bash`` bodies).
SHELL_WORD = re.compile(r"""(?:^|(?<=[\s'"=(,:]))((?:/|[A-Za-z]:[\\/]|\\\\)[^\s'"),;]*)""")
#: Cell magics whose body is Python; any other ``%%magic`` body is scanned as shell text.
PYTHON_CELL_MAGICS = {
    "time",
    "timeit",
    "capture",
    "prun",
    "python",
    "python3",
    "debug",
    "mlops_track",
}


def absolute_path(value: str, prefixes: Sequence[str]) -> bool:
    """Whether ``value`` names a machine-specific absolute path."""
    if value.startswith("file://"):
        value = value[len("file://") :]
    if WINDOWS_PATH.match(value):
        return True
    return any(
        value.startswith(prefix) or (len(prefix) > 1 and value == prefix.rstrip("/"))
        for prefix in prefixes
    )


def _python_literals(source: str) -> Iterator[tuple[int, str]]:
    """``(line, value)`` of the string constants in Python code, skipping bare strings."""
    tree = ast.parse(source)
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            skipped.add(id(node.value))  # docstrings and bare strings do nothing
        elif isinstance(node, ast.JoinedStr):
            # f"/home/{user}" starts with a constant; "{base}/home" does not name /home.
            skipped.update(id(part) for part in node.values[1:])
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in skipped
        ):
            yield node.lineno, node.value


def _shell_words(line: str) -> list[str]:
    return SHELL_WORD.findall(line)


def source_strings(source: str) -> Iterator[tuple[int, str]]:
    """``(line, text)`` of the string literals of a code cell and the words of its magics.

    IPython-only lines (``%magic``, ``!shell``, ``x = !ls``) are blanked for ``ast`` and
    their words checked instead, so a magic never hides the rest of the cell.
    """
    lines = source.splitlines()
    first = lines[0].strip() if lines else ""
    if first.startswith("%%"):
        magic = first[2:].split(None, 1)[0] if first[2:].strip() else ""
        yield from ((1, w) for w in _shell_words(first))
        if magic not in PYTHON_CELL_MAGICS:
            for number, line in enumerate(lines[1:], start=2):
                yield from ((number, w) for w in _shell_words(line))
            return
        lines = ["", *lines[1:]]
    python = list(lines)
    for number, line in enumerate(lines):
        if line.lstrip().startswith(("%", "!", "?")):
            python[number] = ""
            yield from ((number + 1, w) for w in _shell_words(line))
    for _attempt in range(len(python) + 1):
        try:
            yield from _python_literals("\n".join(python))
            return
        except SyntaxError as error:
            bad = (error.lineno or 0) - 1
            if not 0 <= bad < len(python) or not python[bad]:
                return  # not Python we can read (a syntax error we cannot blame on one line)
            yield from ((bad + 1, w) for w in _shell_words(python[bad]))
            python[bad] = ""


def check_absolute_paths(
    nb: Mapping[str, Any], config: CheckConfig, make: FindingMaker
) -> list[Finding]:
    findings = []
    for index, cell in _code_cells(nb):
        for line, value in sorted(set(source_strings(_text(cell.get("source"))))):
            if not absolute_path(value, config.absolute_path_prefixes):
                continue
            shown = value if len(value) <= 80 else value[:77] + "..."
            findings.append(
                make(
                    index,
                    cell,
                    ABSOLUTE_PATH,
                    f"hard-coded absolute path '{shown}' (line {line}): it will not exist on "
                    "another machine; use a path relative to the project, or a parameter",
                )
            )
    return findings


# -- no-parameters-cell ------------------------------------------------------------------
def glob_regex(pattern: str) -> re.Pattern[str]:
    """A ``/``-separated glob: ``*`` and ``?`` stay in one folder, ``**`` spans folders."""
    parts = []
    segments = pattern.strip("/").split("/")
    for number, segment in enumerate(segments):
        last = number == len(segments) - 1
        if segment == "**":
            parts.append(".*" if last else "(?:[^/]+/)*")
            continue
        text = "".join(
            "[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch) for ch in segment
        )
        parts.append(text if last else text + "/")
    return re.compile("".join(parts))


@dataclass
class PipelineIndex:
    """Which notebooks are pipeline steps: listed in an ``mlops.yaml`` or matching a glob.

    ``mlops.yaml`` files are looked for in the notebook's folder and each folder above it
    up to the project root; each is read once per index.
    """

    project_root: Path
    _steps: dict[Path, dict[Path, str]] = field(default_factory=dict)

    def _steps_of(self, spec: Path) -> dict[Path, str]:
        if spec not in self._steps:
            from jupyter_mlops.core.pipeline_spec import load_pipeline

            pipeline = load_pipeline(spec, self.project_root)
            self._steps[spec] = {
                step.notebook.resolve(): name for name, step in pipeline.steps.items()
            }
        return self._steps[spec]

    def reason(self, notebook: Path, patterns: Sequence[str]) -> str | None:
        """Why ``notebook`` is a pipeline notebook, or None when it is not one."""
        path = notebook.resolve()
        root = self.project_root.resolve()
        folder = path.parent
        while folder.is_relative_to(root):  # never read an mlops.yaml outside the project
            spec = folder / PIPELINE_FILE
            if spec.is_file():
                step = self._steps_of(spec).get(path)
                if step is not None:
                    return f"step {step!r} of {spec.relative_to(root).as_posix()}"
            if folder == root:
                break
            folder = folder.parent
        relative = path.relative_to(root).as_posix() if path.is_relative_to(root) else None
        for pattern in patterns:
            if relative is not None and glob_regex(pattern).fullmatch(relative):
                return f"matches pipeline_notebooks {pattern!r}"
        return None


def check_parameters_cell(
    nb: Mapping[str, Any], pipeline: str | None, make: FindingMaker
) -> list[Finding]:
    if pipeline is None or declared_parameters(nb).has_cell:
        return []
    return [
        make(
            None,
            None,
            NO_PARAMETERS_CELL,
            f"pipeline notebook ({pipeline}) has no code cell tagged {PARAMETERS_TAG!r}: "
            "its step params cannot be injected",
        )
    ]


# -- running and fixing ------------------------------------------------------------------
def check_notebook(
    path: Path | str,
    nb: Mapping[str, Any],
    config: CheckConfig,
    *,
    pipelines: PipelineIndex | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Every finding of the enabled rules, in cell order.

    ``pipelines`` decides whether the notebook is a pipeline step (default: an index over
    ``config.project_root``); ``environ`` is where ``secrets_from_environment`` looks.
    """
    file = str(path)

    def make(
        index: int | None,
        cell: Mapping[str, Any] | None,
        rule: str,
        message: str,
        output_index: int | None = None,
    ) -> Finding:
        cell_id = _cell_id(cell) if cell is not None else None
        return Finding(file, index, cell_id, rule, message, output_index)

    findings: list[Finding] = []
    if config.enabled(NO_PARAMETERS_CELL):
        index = pipelines or PipelineIndex(config.project_root or Path.cwd())
        reason = index.reason(Path(path), config.pipeline_notebooks)
        findings += check_parameters_cell(nb, reason, make)
    if config.enabled(EXECUTION_ORDER):
        findings += check_execution_order(nb, config, make)
    if config.enabled(NOT_EXECUTED):
        findings += check_not_executed(nb, config, make)
    if config.enabled(ERROR_OUTPUT):
        findings += check_error_outputs(nb, config, make)
    if config.enabled(OUTPUT_SIZE):
        findings += check_output_size(nb, config, make)
    if config.enabled(SECRET):
        findings += check_secrets(nb, config, make, os.environ if environ is None else environ)
    if config.enabled(ABSOLUTE_PATH):
        findings += check_absolute_paths(nb, config, make)
    order = list(RULES)
    return sorted(
        findings,
        key=lambda f: (
            -1 if f.cell_index is None else f.cell_index,
            -1 if f.output_index is None else f.output_index,
            order.index(f.rule),
        ),
    )


def fix_notebook(
    nb: Mapping[str, Any], findings: Sequence[Finding], config: CheckConfig
) -> tuple[dict[str, Any], int]:
    """A copy of ``nb`` without the outputs the fixable findings name; how many it fixed.

    Fixable: ``error-output``, ``output-size`` and ``secret`` findings about an output (the
    ones ``config.fix`` lists). The output is removed whole: masking a secret could leave
    part of it (a private key's body after its masked header). Sources, metadata and
    execution counts are never changed.
    """
    fixed = copy.deepcopy(dict(nb))
    cells = fixed.get("cells", [])
    doomed: dict[int, set[int]] = {}
    count = 0
    for finding in findings:
        if not finding.fixable or finding.rule not in config.fix:
            continue
        cell_index, output_index = finding.cell_index, finding.output_index
        if cell_index is None or output_index is None or not 0 <= cell_index < len(cells):
            continue
        outputs = cells[cell_index].get("outputs")
        if not isinstance(outputs, list) or not 0 <= output_index < len(outputs):
            continue
        doomed.setdefault(cell_index, set()).add(output_index)
        count += 1
    for cell_index, numbers in doomed.items():
        cell = cells[cell_index]
        cell["outputs"] = [o for n, o in enumerate(cell["outputs"]) if n not in numbers]
    return fixed, count
