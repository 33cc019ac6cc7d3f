"""Facts about where a run happens: installed packages, git state, host and user.

Collected in the writer thread (listing packages and asking git take tens of
milliseconds), never on a cell's path.
"""

from __future__ import annotations

import getpass
import hashlib
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

#: The run tag naming the notebook a run tracks (its path as the kernel or runner saw it).
TAG_NOTEBOOK = "mlops.notebook"


def environment_listing() -> tuple[str, str]:
    """``name==version`` of every installed distribution, sorted, and its SHA-256."""
    seen: dict[str, str] = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").strip()
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    text = "".join(f"{line}\n" for _key, line in sorted(seen.items()))
    return text, hashlib.sha256(text.encode()).hexdigest()


def git_state(folder: Path) -> dict[str, str]:
    """Commit and dirty flag of the repository holding ``folder`` (empty when none)."""

    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(
                ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=5
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {}
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {
        "mlflow.source.git.commit": commit,
        "mlops.git.dirty": "true" if dirty else "false",
    }


def run_tags(notebook_path: str | None, kernel_name: str | None) -> dict[str, str]:
    """The tags every tracked run carries."""
    tags = {
        "mlops.python": platform.python_version(),
        "mlops.host": socket.gethostname(),
        "mlflow.user": current_user(),
        "mlops.kernel": kernel_name or "python3",
        "mlflow.source.type": "NOTEBOOK" if notebook_path else "LOCAL",
    }
    if notebook_path:
        tags[TAG_NOTEBOOK] = notebook_path
        tags["mlflow.source.name"] = notebook_path
        tags.update(git_state(Path(notebook_path).resolve().parent))
    else:
        tags.update(git_state(Path.cwd()))
    return tags


def current_user() -> str:
    """The login name, as MLflow records it; ``unknown`` when the system has none."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
