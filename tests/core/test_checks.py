"""``core.checks``: each rule on notebook dicts, the config table, fixes, and reading notebooks."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlops.core.checks import (
    ABSOLUTE_PATH,
    ERROR_OUTPUT,
    EXECUTION_ORDER,
    NO_PARAMETERS_CELL,
    NOT_EXECUTED,
    OUTPUT_SIZE,
    RULES,
    SECRET,
    CheckConfig,
    Finding,
    PipelineIndex,
    check_notebook,
    fix_notebook,
    glob_regex,
    load_check_config,
    parse_check_config,
)
from jupyter_mlops.core.errors import (
    ConfigError,
    ForbiddenPathError,
    InvalidNotebookError,
    NotFoundError,
)
from jupyter_mlops.core.notebook_file import local_path, read_notebook
from jupyter_mlops.core.secrets import MASK, SecretMasker, find_secrets

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
PRIVATE_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\nfake-key-body-for-tests\n-----END RSA PRIVATE KEY-----\n"
)


# -- helpers -----------------------------------------------------------------------------
def code(source: str, count: int | None = None, outputs: list | None = None, **extra: Any) -> dict:
    cell = {
        "cell_type": "code",
        "execution_count": count,
        "metadata": extra.pop("metadata", {}),
        "outputs": outputs or [],
        "source": source,
    }
    cell.update(extra)
    return cell


def markdown(source: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": source}


def stream(text: str) -> dict:
    return {"output_type": "stream", "name": "stdout", "text": text}


def error(ename: str = "ValueError", evalue: str = "bad value") -> dict:
    return {
        "output_type": "error",
        "ename": ename,
        "evalue": evalue,
        "traceback": [f"\x1b[0;31m{ename}\x1b[0m: {evalue}"],
    }


def notebook(*cells: dict) -> dict:
    for number, cell in enumerate(cells):
        cell.setdefault("id", f"cell-{number}")
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def check(nb: dict, config: CheckConfig | None = None, **kwargs: Any) -> list[Finding]:
    kwargs.setdefault("environ", {})
    kwargs.setdefault("pipelines", NoPipelines())
    return check_notebook("nb.ipynb", nb, config or CheckConfig(), **kwargs)


class NoPipelines(PipelineIndex):
    """An index that calls every notebook a non-pipeline one, reading no files."""

    def __init__(self) -> None:
        super().__init__(Path("/nonexistent"))

    def reason(self, notebook: Path, patterns: Any) -> str | None:
        return None


def rules(findings: list[Finding]) -> list[tuple[int | None, str]]:
    return [(f.cell_index, f.rule) for f in findings]


# -- execution-order and not-executed ----------------------------------------------------
def test_increasing_counts_with_gaps_pass_and_a_count_going_back_is_flagged() -> None:
    assert check(notebook(code("a = 1", 1), code("b = 2", 4), code("c = 3", 9))) == []
    findings = check(notebook(code("a = 1", 3), code("b = a", 1), code("c = b", 5)))
    assert rules(findings) == [(1, EXECUTION_ORDER)]
    assert "In [1]" in findings[0].message and "cell 1" in findings[0].message
    assert findings[0].cell_id == "cell-1"


def test_equal_counts_are_out_of_order_and_every_later_offender_is_reported() -> None:
    findings = check(notebook(code("a", 5), code("b", 5), code("c", 2), code("d", 6)))
    assert rules(findings) == [(1, EXECUTION_ORDER), (2, EXECUTION_ORDER)]


def test_consecutive_mode_also_flags_gaps_and_a_first_count_other_than_one() -> None:
    config = CheckConfig(execution_order="consecutive")
    assert check(notebook(code("a", 1), markdown("x"), code("b", 2)), config) == []
    findings = check(notebook(code("a", 2), code("b", 3), code("c", 5)), config)
    assert rules(findings) == [(0, EXECUTION_ORDER), (2, EXECUTION_ORDER)]
    assert "not In [1]" in findings[0].message


def test_a_partly_executed_notebook_flags_the_cells_that_never_ran() -> None:
    nb = notebook(code("a = 1", 1), code("b = 2"), code("   \n"), markdown("text"))
    findings = check(nb)
    assert rules(findings) == [(1, NOT_EXECUTED)]  # the blank cell is not a finding


def test_a_notebook_where_nothing_ran_passes_unless_configured_otherwise() -> None:
    nb = notebook(code("a = 1"), code("b = 2"))
    assert check(nb) == []
    strict = check(nb, CheckConfig(allow_unexecuted_notebooks=False))
    assert rules(strict) == [(0, NOT_EXECUTED), (1, NOT_EXECUTED)]


# -- error-output and output-size --------------------------------------------------------
def test_error_outputs_are_flagged_with_name_and_masked_value_and_are_fixable() -> None:
    nb = notebook(code("x = 1", 1), code("raise", 2, [stream("hi\n"), error()]))
    [finding] = check(nb, CheckConfig(disable=frozenset({SECRET})))
    assert (finding.cell_index, finding.output_index, finding.rule) == (1, 1, ERROR_OUTPUT)
    assert finding.message == "output 2 is a saved error: ValueError: bad value"
    assert finding.fixable
    leaky = notebook(code("raise", 1, [error("KeyError", f"no key {AWS_KEY}")]))
    [message] = [f.message for f in check(leaky) if f.rule == ERROR_OUTPUT]
    assert AWS_KEY not in message and MASK in message


def test_output_size_limit_is_per_output_and_configurable() -> None:
    small, big = stream("x" * 1000), stream("y" * 5000)
    nb = notebook(code("print()", 1, [small, big]))
    assert check(nb) == []  # default limit: 500 KB
    [finding] = check(nb, CheckConfig(output_size_kb=4))
    assert (finding.rule, finding.output_index) == (OUTPUT_SIZE, 1)
    assert "5 KB, over the 4 KB limit" in finding.message
    assert "(stream)" in finding.message


def test_output_size_names_the_largest_mime_type() -> None:
    picture = {
        "output_type": "display_data",
        "metadata": {},
        "data": {"image/png": "iVBORw0K" * 1000, "text/plain": "<Figure>"},
    }
    [finding] = check(notebook(code("plot()", 1, [picture])), CheckConfig(output_size_kb=2))
    assert "(image/png)" in finding.message


# -- secret ------------------------------------------------------------------------------
def test_secrets_in_sources_name_the_kind_and_line_never_the_value() -> None:
    nb = notebook(code(f'region = "eu"\naws_key = "{AWS_KEY}"', 1), markdown(PRIVATE_KEY))
    findings = check(nb)
    assert rules(findings) == [(0, SECRET), (1, SECRET)]
    assert findings[0].message.startswith("AWS Access Key in the source (line 2)")
    assert findings[1].message.startswith("Private Key in the source (line 1)")
    assert not any(f.fixable for f in findings)  # sources are never changed
    text = json.dumps([f.to_json() for f in findings])
    assert AWS_KEY not in text and "BEGIN RSA" not in text


@pytest.mark.parametrize(
    "output",
    [
        stream(PRIVATE_KEY),
        {
            "output_type": "execute_result",
            "execution_count": 1,
            "metadata": {},
            "data": {"text/plain": [f"'{AWS_KEY}'"]},
        },
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {"text/html": f"<td>{AWS_KEY}</td>"},
        },
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {"application/json": {"key": AWS_KEY}},
        },
        {
            "output_type": "error",
            "ename": "E",
            "evalue": "x",
            "traceback": [f"\x1b[0;31mkey={AWS_KEY}\x1b[0m"],
        },
        stream("connecting to postgresql://alice:s3cretpassw0rd@db.example.com/prod\n"),
    ],
    ids=["stream", "text-plain", "text-html", "json", "traceback", "url-password"],
)
def test_secrets_in_each_kind_of_output_text_are_found_and_fixable(output: dict) -> None:
    [finding] = check(
        notebook(code("show()", 1, [output])), CheckConfig(disable=frozenset({ERROR_OUTPUT}))
    )
    assert (finding.rule, finding.output_index, finding.fixable) == (SECRET, 0, True)
    assert f"output 1 ({output['output_type']})" in finding.message


def test_ids_hashes_paths_urls_and_embedded_images_are_not_secrets() -> None:
    text = (
        "run 0f1e2d3c4b5a69788796a5b4c3d2e1f0 finished\n"
        "saved /home/alice/projects/churn/data/clean.csv\n"
        "row 00001: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"
        "epoch 3 loss 0.1234 val_accuracy 0.9876 Authorization Bearer\n"
        "see https://github.com/org/repo/blob/403466d1d5d4dc76a7ef569b3f8228db59a31dc3/src/report.js\n"
    )
    image = base64.b64encode(bytes(range(256)) * 8).decode()
    html = {
        "output_type": "display_data",
        "metadata": {},
        "data": {
            "text/html": f"<style>.i {{background: url(data:image/png;base64,{image})}}</style>"
        },
    }
    nb = notebook(
        code('path = "models/classifier_v2_final.pkl"', 1, [stream(text), html]),
        markdown(f"![logo](data:image/png;base64,{image})"),
    )
    assert check(nb, CheckConfig(disable=frozenset({ABSOLUTE_PATH}))) == []


def test_environment_values_count_only_when_configured() -> None:
    nb = notebook(code("print(token)", 1, [stream("tok-0123456789abc\n")]))
    environ = {"SERVICE_TOKEN": "tok-0123456789abc"}
    assert check(nb, environ=environ) == []
    [finding] = check(nb, CheckConfig(secrets_from_environment=True), environ=environ)
    assert "environment variable SERVICE_TOKEN" in finding.message
    assert "tok-0123456789abc" not in finding.message


def test_find_secrets_reports_kinds_and_lines_and_leaves_the_masker_alone() -> None:
    text = f"first\nkey = '{AWS_KEY}'\nsaved /home/alice/projects/churn/data\n"
    assert [(h.kind, h.line) for h in find_secrets(text)] == [("AWS Access Key", 2)]
    # A provider's token format counts unquoted; a random-looking string only when quoted.
    github = "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"
    random = "J8s7d6f5g4h3j2k1l0ZxCvBnMqWeRtYuIoP"
    assert [h.kind for h in find_secrets(f"token {github}")] == ["GitHub Token"]
    assert find_secrets(f"token {random}") == []
    assert [h.kind for h in find_secrets(f'token = "{random}"')] == ["Base64 High Entropy String"]
    assert find_secrets("password = 'short'") == []
    # The masker still masks what it masked before (unquoted 20-character words included).
    masked = SecretMasker(environ={}).mask(text)
    assert AWS_KEY not in masked
    assert "/home/alice/projects/churn/data" not in masked


# -- absolute-path -----------------------------------------------------------------------
def paths_in(source: str, config: CheckConfig | None = None) -> list[str]:
    findings = check(notebook(code(source, 1)), config or CheckConfig(disable=frozenset({SECRET})))
    return [f.message.split("'")[1] for f in findings if f.rule == ABSOLUTE_PATH]


def test_machine_specific_paths_in_string_literals_are_flagged_with_their_line() -> None:
    source = (
        "import pandas as pd\n"
        'df = pd.read_csv("/home/alice/data.csv")\n'
        "out = r'C:\\models\\m.pkl'\n"
        "share = '\\\\\\\\server\\\\team\\\\x.csv'\n"
        'url = "file:///Users/bob/x.parquet"\n'
        'user_dir = f"/home/{user}/cache"\n'
        'root = Path("/home")\n'
    )
    findings = check(notebook(code(source, 1)))
    assert [f.message.split("(line ")[1][0] for f in findings] == ["2", "3", "4", "5", "6", "7"]
    assert paths_in(source) == [
        "/home/alice/data.csv",
        "C:\\models\\m.pkl",
        "\\\\server\\team\\x.csv",
        "file:///Users/bob/x.parquet",
        "/home/",
        "/home",
    ]


def test_portable_and_non_path_strings_are_not_flagged() -> None:
    source = (
        '"""Reads /home/alice/notes.txt in the docstring only."""\n'
        "# a comment about /Users/bob\n"
        'scratch = "/tmp/scratch.csv"\n'
        'endpoint = "/api/v1/runs"\n'
        'relative = "data/raw.csv"\n'
        'joined = f"{base}/home/x"\n'
        'site = "https://example.com/home/alice"\n'
    )
    assert paths_in(source) == []
    assert paths_in(source, CheckConfig(absolute_path_prefixes=("/tmp/",))) == ["/tmp/scratch.csv"]


def test_magics_and_shell_lines_are_checked_and_do_not_hide_the_rest_of_the_cell() -> None:
    source = (
        "%cd /Users/bob/project\n"
        "files = !ls /data/shared\n"
        "%matplotlib inline\n"
        'df = load("/mnt/lake/table.parquet")\n'
        "df.describe?\n"
    )
    assert paths_in(source) == ["/Users/bob/project", "/data/shared", "/mnt/lake/table.parquet"]


def test_cell_magic_bodies_are_shell_text_unless_the_magic_runs_python() -> None:
    assert paths_in("%%bash\ncp /home/alice/a.csv data/\nls /tmp\n") == ["/home/alice/a.csv"]
    assert paths_in('%%time\nx = "/opt/models/m.bin"\n') == ["/opt/models/m.bin"]
    assert paths_in("%%mlops_track --params lr\nlr = 0.1\n") == []


def test_a_cell_that_is_not_python_is_checked_as_far_as_possible() -> None:
    assert paths_in('x = (\n"/home/alice/a"\n') == []  # unclosed: nothing to blame, no crash
    assert paths_in('good = "/srv/a"\nthis is not python "/srv/b"\n') == ["/srv/a", "/srv/b"]


# -- no-parameters-cell ------------------------------------------------------------------
def write_nb(path: Path, nb: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))
    return path


def test_a_step_of_an_mlops_yaml_above_it_needs_a_parameters_cell(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    nb = notebook(code("rows = 10", 1))
    step = write_nb(tmp_path / "flows" / "steps" / "train.ipynb", nb)
    other = write_nb(tmp_path / "flows" / "steps" / "explore.ipynb", nb)
    (tmp_path / "flows" / "mlops.yaml").write_text(
        "steps:\n  train:\n    notebook: steps/train.ipynb\n"
    )
    index = PipelineIndex(tmp_path)
    assert index.reason(step, ()) == "step 'train' of flows/mlops.yaml"
    assert index.reason(other, ()) is None
    [finding] = check_notebook(step, nb, CheckConfig(), pipelines=index, environ={})
    assert (finding.rule, finding.cell_index) == (NO_PARAMETERS_CELL, None)
    assert "step 'train' of flows/mlops.yaml" in finding.message
    assert check_notebook(other, nb, CheckConfig(), pipelines=index, environ={}) == []
    tagged = notebook(code("rows = 10", 1, metadata={"tags": ["parameters"]}))
    assert check_notebook(step, tagged, CheckConfig(), pipelines=index, environ={}) == []


def test_notebooks_matching_the_pipeline_globs_are_pipeline_notebooks(tmp_path: Path) -> None:
    nb = notebook(code("x = 1", 1))
    inside = write_nb(tmp_path / "pipelines" / "daily" / "load.ipynb", nb)
    outside = write_nb(tmp_path / "analysis" / "load.ipynb", nb)
    config = CheckConfig(project_root=tmp_path)
    assert rules(check_notebook(inside, nb, config, environ={})) == [(None, NO_PARAMETERS_CELL)]
    assert check_notebook(outside, nb, config, environ={}) == []
    custom = CheckConfig(project_root=tmp_path, pipeline_notebooks=("analysis/*.ipynb",))
    assert check_notebook(inside, nb, custom, environ={}) == []
    assert rules(check_notebook(outside, nb, custom, environ={})) == [(None, NO_PARAMETERS_CELL)]


def test_an_invalid_mlops_yaml_on_the_way_is_a_config_error(tmp_path: Path) -> None:
    step = write_nb(tmp_path / "train.ipynb", notebook())
    (tmp_path / "mlops.yaml").write_text("steps: [\n")
    with pytest.raises(ConfigError, match=r"mlops\.yaml"):
        PipelineIndex(tmp_path).reason(step, ())


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("pipelines/**/*.ipynb", "pipelines/a.ipynb", True),
        ("pipelines/**/*.ipynb", "pipelines/x/y/a.ipynb", True),
        ("pipelines/**/*.ipynb", "other/pipelines/a.ipynb", False),
        ("pipelines/**/*.ipynb", "pipelines/a.py", False),
        ("*.ipynb", "a.ipynb", True),
        ("*.ipynb", "sub/a.ipynb", False),
        ("**/step_?.ipynb", "a/b/step_1.ipynb", True),
        ("**/step_?.ipynb", "step_12.ipynb", False),
    ],
)
def test_glob_patterns(pattern: str, path: str, matches: bool) -> None:
    assert bool(glob_regex(pattern).fullmatch(path)) is matches


# -- configuration -----------------------------------------------------------------------
def test_the_check_table_is_read_from_the_project_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.jupyter-mlops]\ntracking_uri = "sqlite:///x.db"\n\n'
        "[tool.jupyter-mlops.check]\n"
        'disable = ["not-executed"]\noutput_size_kb = 64\nexecution_order = "consecutive"\n'
        'pipeline_notebooks = ["flows/*.ipynb"]\nfix = ["error-output"]\n'
    )
    config = load_check_config(tmp_path)
    assert config.disable == {NOT_EXECUTED} and not config.enabled(NOT_EXECUTED)
    assert config.enabled(EXECUTION_ORDER)
    assert config.output_size_kb == 64.0
    assert config.execution_order == "consecutive"
    assert config.pipeline_notebooks == ("flows/*.ipynb",)
    assert config.fix == {ERROR_OUTPUT}
    assert config.project_root == tmp_path
    assert load_check_config(tmp_path / "missing") == CheckConfig(project_root=tmp_path / "missing")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"disabled": ["secret"]}, "unknown key disabled"),
        ({"disable": ["secrets"]}, "unknown rule secrets"),
        ({"disable": "secret"}, "disable must be a list"),
        ({"fix": ["execution-order"]}, "fix names unknown rule execution-order"),
        ({"output_size_kb": 0}, "output_size_kb must be a positive"),
        ({"output_size_kb": "500"}, "output_size_kb must be a positive"),
        ({"execution_order": "strict"}, "execution_order must be one of"),
        ({"allow_unexecuted_notebooks": "yes"}, "must be true or false"),
        ({"pipeline_notebooks": "pipelines/*.ipynb"}, "must be a list of non-empty strings"),
    ],
)
def test_invalid_check_tables_are_config_errors_naming_the_file(table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_check_config(table, "/p/pyproject.toml")
    assert "/p/pyproject.toml" in str(caught.value)


def test_disabled_rules_do_not_run() -> None:
    nb = notebook(code("a", 2), code("b", 1, [error()]))
    assert {f.rule for f in check(nb)} == {EXECUTION_ORDER, ERROR_OUTPUT}
    off = CheckConfig(disable=frozenset(RULES))
    assert check(nb, off) == []


# -- fixing ------------------------------------------------------------------------------
def test_fix_removes_only_error_big_and_secret_outputs_and_never_sources() -> None:
    source = f'key = "{AWS_KEY}"\nprint(key)'
    nb = notebook(
        code("x = 1", 2, [stream("ok\n"), error(), stream("z" * 5000)]),
        code(source, 1, [stream(f"{AWS_KEY}\n"), stream("fine\n")]),
    )
    before = copy.deepcopy(nb)
    config = CheckConfig(output_size_kb=4)
    findings = check(nb, config)
    assert rules(findings) == [
        (0, ERROR_OUTPUT),
        (0, OUTPUT_SIZE),
        (1, EXECUTION_ORDER),
        (1, SECRET),
        (1, SECRET),
    ]
    fixed, count = fix_notebook(nb, findings, config)
    assert count == 3
    assert nb == before  # the input is not modified
    assert fixed["cells"][0]["outputs"] == [stream("ok\n")]
    assert fixed["cells"][1]["outputs"] == [stream("fine\n")]
    assert [c["source"] for c in fixed["cells"]] == [c["source"] for c in before["cells"]]
    assert [c["execution_count"] for c in fixed["cells"]] == [2, 1]  # counts are not renumbered
    assert rules(check(fixed, config)) == [(1, EXECUTION_ORDER), (1, SECRET)]


def test_fix_strips_only_the_rules_the_config_allows() -> None:
    nb = notebook(code("x", 1, [error(), stream(PRIVATE_KEY)]))
    findings = check(nb)
    assert [f.rule for f in findings] == [ERROR_OUTPUT, SECRET]
    fixed, count = fix_notebook(nb, findings, CheckConfig(fix=frozenset({SECRET})))
    assert count == 1
    assert [o["output_type"] for o in fixed["cells"][0]["outputs"]] == ["error"]


def test_fix_ignores_findings_that_do_not_point_at_an_existing_output() -> None:
    nb = notebook(code("x", 1, [stream("a\n")]))
    stale = [
        Finding("nb.ipynb", 0, "cell-0", ERROR_OUTPUT, "gone", 5),
        Finding("nb.ipynb", 7, None, OUTPUT_SIZE, "gone", 0),
        Finding("nb.ipynb", 0, "cell-0", EXECUTION_ORDER, "not fixable", None),
    ]
    assert fix_notebook(nb, stale, CheckConfig()) == (nb, 0)


def test_findings_render_one_based_cells_in_text_and_json() -> None:
    finding = Finding("a.ipynb", 2, "abc", SECRET, "Private Key in output 1 (stream)", 0)
    assert finding.location() == "a.ipynb:cell 3 [abc]"
    assert Finding("a.ipynb", 0, None, EXECUTION_ORDER, "m").location() == "a.ipynb:cell 1"
    assert Finding("a.ipynb", None, None, NO_PARAMETERS_CELL, "m").location() == "a.ipynb"
    assert finding.to_json() == {
        "file": "a.ipynb",
        "cell": 3,
        "cell_index": 2,
        "cell_id": "abc",
        "rule": SECRET,
        "message": "Private Key in output 1 (stream)",
        "output": 1,
        "fixable": True,
    }


def test_the_shipped_example_notebooks_give_the_expected_findings() -> None:
    def found(name: str) -> list[tuple[int | None, str]]:
        return rules(check(read_notebook(NOTEBOOKS / name)))

    assert found("check_clean.ipynb") == []
    assert found("check_out_of_order.ipynb") == [(1, EXECUTION_ORDER), (2, NOT_EXECUTED)]
    assert found("check_error_output.ipynb") == [(1, ERROR_OUTPUT)]
    assert found("check_secret.ipynb") == [(0, SECRET), (1, SECRET)]
    assert found("check_absolute_path.ipynb") == [(0, ABSOLUTE_PATH)] * 3
    assert found("check_big_output.ipynb") == []
    assert rules(
        check(read_notebook(NOTEBOOKS / "check_big_output.ipynb"), CheckConfig(output_size_kb=4))
    ) == [(0, OUTPUT_SIZE)]


# -- reading notebooks -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("check_truncated.ipynb", "is not a notebook: invalid JSON at line 10"),
        ("check_nbformat3.ipynb", "nbformat 3 is not supported (expected 4)"),
        ("check_duplicate_ids.ipynb", "cells 1 and 3 have the same id 'same'"),
    ],
)
def test_invalid_notebooks_name_the_file_and_the_problem(name: str, message: str) -> None:
    with pytest.raises(InvalidNotebookError) as caught:
        read_notebook(NOTEBOOKS / name)
    assert message in str(caught.value)
    assert name in str(caught.value)


def test_schema_errors_name_the_cell(tmp_path: Path) -> None:
    bad = notebook(code("x", 1))
    bad["cells"][0]["execution_count"] = "one"
    path = write_nb(tmp_path / "bad.ipynb", bad)
    with pytest.raises(
        InvalidNotebookError,
        match=r"bad.ipynb is not a valid notebook: cell 1 execution_count: 'one'",
    ):
        read_notebook(path)
    with pytest.raises(NotFoundError, match="does not exist"):
        read_notebook(tmp_path / "missing.ipynb")


@pytest.mark.parametrize(
    "reference",
    [
        "https://host/a.ipynb",
        "http://h/a.ipynb",
        "s3://b/a.ipynb",
        "file:///a.ipynb",
        "gs://b/a.ipynb",
    ],
)
def test_urls_are_refused(reference: str) -> None:
    with pytest.raises(ForbiddenPathError, match="is a URL"):
        local_path(reference)


@pytest.mark.parametrize(
    "reference",
    [
        "a.ipynb",
        "dir/a.ipynb",
        "/abs/a.ipynb",
        "C:\\nb\\a.ipynb",
        "c:/nb/a.ipynb",
        "weird:name.ipynb",
    ],
)
def test_local_paths_are_accepted(reference: str) -> None:
    assert local_path(reference) == Path(reference)
