"""The main job of jupyter-mlops end to end, as ``make demo`` runs it.

Every step is the ``jupyter mlops`` command a user would type (printed before it runs);
this script only picks ids from the store between steps (the best run, its model version).

1. a tracked batch sweep of ``train.ipynb`` (each point registers a model version);
2. the ``mlops.yaml`` pipeline train -> evaluate -> monitor (cached when nothing changed);
3. ``reproduce`` of the best run of the sweep;
4. a review of the best version against the current champion: comment, approve;
5. ``promote`` it to ``champion`` (the project's policy requires the approved review and
   the reproduced verdict);
6. a text diff of the best and the worst run, its HTML page, and the champion's lineage.

``--project DIR`` copies the example into DIR first (the end-to-end test does).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLE_FILES = ("train.ipynb", "evaluate.ipynb", "monitor.ipynb", "mlops.yaml")
MODEL = "demo-classifier"
POLICY = """
[tool.jupyter-mlops]
require_review_for = ["champion"]
require_reproduced_for = ["champion"]
"""


def cli(folder: Path, *args: str, show: bool = True, limit: int | None = None) -> str:
    """Run ``jupyter mlops ARGS`` in ``folder``, echoing the command and its output."""
    command = [str(Path(sys.executable).with_name("jupyter-mlops")), *args]
    print(f"\n$ jupyter mlops {shlex.join(args)}", flush=True)
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    output = result.stdout
    if show:
        lines = output.rstrip("\n").splitlines()
        shown = lines if limit is None else lines[:limit]
        print("\n".join(shown))
        if limit is not None and len(lines) > limit:
            print(f"... ({len(lines) - limit} more lines)")
    if result.returncode != 0:
        print(result.stderr, file=sys.stderr, end="")
        raise SystemExit(f"demo: `jupyter mlops {shlex.join(args)}` exited {result.returncode}")
    return output


def prepare(project: Path | None) -> Path:
    """The folder the demo runs in: the example itself, or a copy of it in ``project``."""
    if project is None:
        return HERE
    project.mkdir(parents=True, exist_ok=True)
    for name in EXAMPLE_FILES:
        shutil.copy(HERE / name, project / name)
    pyproject = project / "pyproject.toml"
    if not pyproject.exists():
        pyproject.write_text(f'[project]\nname = "mlops-demo"\n{POLICY}')
    return project


def client_for(folder: Path) -> tuple[object, str]:
    """An MLflow client on the same store the commands resolved (``status --json``)."""
    import json

    from mlflow.tracking import MlflowClient

    status = json.loads(cli(folder, "status", "--json", show=False))
    uri = status["tracking"]["uri"]
    return MlflowClient(tracking_uri=uri, registry_uri=uri), uri


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="copy the example here and run it there")
    parser.add_argument("--grid", default="C=0.01,0.1,1.0", help="the sweep of train.ipynb")
    parser.add_argument("--workers", default="2")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    started = time.monotonic()
    folder = prepare(args.project)
    out = folder / "demo-output"
    out.mkdir(exist_ok=True)

    print("== 1. a tracked batch sweep of train.ipynb")
    text = cli(
        folder,
        "batch",
        "train.ipynb",
        "--grid",
        args.grid,
        "--workers",
        args.workers,
        "--sort",
        "accuracy",
        "--output-dir",
        str(out / "batch"),
    )
    batch_id = text.rsplit("batch ", 1)[1].split(":", 1)[0]

    print("\n== 2. the pipeline train -> evaluate -> monitor (mlops.yaml)")
    cli(folder, "pipeline", "run", "mlops.yaml")

    client, uri = client_for(folder)
    children = client.search_runs(  # type: ignore[attr-defined]
        [client.get_run(batch_id).info.experiment_id],  # type: ignore[attr-defined]
        filter_string=f"tags.mlflow.parentRunId = '{batch_id}' and attributes.status = 'FINISHED'",
        order_by=["metrics.accuracy DESC"],
    )
    best, worst = children[0].info.run_id, children[-1].info.run_id
    versions = client.search_model_versions(f"run_id = '{best}'")  # type: ignore[attr-defined]
    version = str(versions[0].version)

    print(
        f"\n== 3. reproduce the best run ({best[:8]}, accuracy "
        f"{children[0].data.metrics['accuracy']:.4f})"
    )
    cli(folder, "reproduce", best)

    print(f"\n== 4. review {MODEL} v{version} against the current champion")
    review = cli(folder, "review", "open", f"models:/{MODEL}/{version}", "--user", "reviewer")
    review_id = review.split()[1].rstrip(":")
    # train-04 is the id of train.ipynb's training cell.
    cli(
        folder,
        "review",
        "comment",
        review_id,
        "--cell",
        "train-04",
        "Checked the regularisation sweep: the best C is stable.",
        "--user",
        "reviewer",
    )
    cli(
        folder,
        "review",
        "approve",
        review_id,
        "-m",
        "reproduced and reviewed",
        "--user",
        "reviewer",
    )

    print(f"\n== 5. promote {MODEL} v{version} to champion (policy: review + reproduced)")
    cli(folder, "promote", MODEL, version, "--alias", "champion")

    print("\n== 6. what the store says now")
    cli(folder, "diff", worst, best, "--ignore-outputs", "--color", "never", limit=30)
    html = out / "best-vs-worst.html"
    cli(folder, "diff", worst, best, "--html", str(html), show=False)
    cli(folder, "lineage", f"models:/{MODEL}@champion")
    cli(folder, "review", "list")
    print(f"\nHTML diff of the worst and the best run: {html}")
    print(f"MLflow UI on this store:  mlflow ui --backend-store-uri {uri}")
    print("JupyterLab with the run browser:  make lab")
    print(f"demo finished in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
