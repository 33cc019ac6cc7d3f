"""Start-up cost of our entry points against the plain tools, in one run.

`%load_ext jupyter_mlops` and `jupyter mlops --help` must not pay for importing MLflow
(about 3 s here). This measures, in fresh interpreters, the median wall time of:

* loading the extension into an IPython shell, against `import mlflow`;
* `jupyter-mlops --help`, against `mlflow --help`;

and prints each median and the ratio plain / ours.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
REPEAT = 5


def wall(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def median_of(command: list[str]) -> float:
    wall(command)  # warm the file cache
    return statistics.median(wall(command) for _ in range(REPEAT))


def in_process(code: str) -> float:
    """Seconds spent inside a fresh interpreter on ``code`` (interpreter start excluded)."""
    timed = f"import time; t = time.perf_counter()\n{code}\nprint(time.perf_counter() - t)"
    runs = []
    for _ in range(REPEAT):
        out = subprocess.run(
            [sys.executable, "-c", timed], check=True, capture_output=True, text=True
        )
        runs.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(runs)


def main() -> None:
    shell = "from IPython.testing.globalipapp import start_ipython; ip = start_ipython()\n"
    load_ext = in_process(
        "from IPython.testing.globalipapp import start_ipython; ip = start_ipython()\n"
        "t = time.perf_counter(); ip.run_line_magic('load_ext', 'jupyter_mlops')"
    )
    import_mlflow = in_process(shell + "t = time.perf_counter(); import mlflow")
    ours_help = median_of([str(BIN / "jupyter-mlops"), "--help"])
    mlflow_help = median_of([str(BIN / "mlflow"), "--help"])
    print(f"{'what':<40}{'ours (s)':>10}{'plain (s)':>11}{'plain/ours':>12}")
    print(
        f"{'%load_ext vs import mlflow':<40}{load_ext:>10.3f}{import_mlflow:>11.3f}"
        f"{import_mlflow / load_ext:>11.1f}x"
    )
    print(
        f"{'jupyter-mlops --help vs mlflow --help':<40}{ours_help:>10.3f}{mlflow_help:>11.3f}"
        f"{mlflow_help / ours_help:>11.1f}x"
    )


if __name__ == "__main__":
    main()
