"""A notebook with 100 MB of outputs runs, and what reaches the store follows the size
policy: the input snapshot and the executed copy are small, the local file is whole."""

from __future__ import annotations

import json
from pathlib import Path

from store_under_test import store_client

from conftest import run_cli

HUNDRED_MB = 100_000_000


def test_hundred_megabytes_of_outputs_never_crash_and_stay_out_of_the_store(
    project: Path, tmp_path: Path
) -> None:
    # Given a notebook saved with 100 MB of output, whose cell prints 30 MB when it runs
    cell = {
        "cell_type": "code",
        "id": "big",
        "metadata": {},
        "execution_count": 1,
        "source": "import sys\nsys.stdout.write('b' * 30_000_000)\nprint()\nprint('done')",
        "outputs": [{"output_type": "stream", "name": "stdout", "text": "a" * HUNDRED_MB}],
    }
    nb = {
        "cells": [cell],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (project / "big.ipynb").write_text(json.dumps(nb))
    # When it runs as a tracked step
    result = run_cli(project, "run", "big.ipynb", "--output", "big-out.ipynb", timeout=600)
    # Then it finishes, the local executed notebook is whole, the store's copies are small
    assert result.returncode == 0, result.stderr
    executed = json.loads((project / "big-out.ipynb").read_text())
    texts = [o.get("text", "") for o in executed["cells"][0]["outputs"]]
    printed = "".join(t if isinstance(t, str) else "".join(t) for t in texts)
    assert printed.count("b") == 30_000_000 and "done" in printed
    client = store_client(project)
    run = client.search_runs([e.experiment_id for e in client.search_experiments()])[0]
    assert run.info.status == "FINISHED"
    (snapshot,) = client.list_artifacts(run.info.run_id, "snapshots")
    (stored,) = client.list_artifacts(run.info.run_id, "executed")
    assert stored.path == "executed/big.ipynb"
    assert snapshot.file_size < 100_000 and stored.file_size < 100_000
    for artifact in (snapshot, stored):
        local = client.download_artifacts(run.info.run_id, artifact.path, str(tmp_path))
        assert "was left out of this copy" in Path(local).read_text()
