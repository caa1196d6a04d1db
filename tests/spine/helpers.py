"""Run the CLI in a subprocess the way a user does, with the toy study on the path."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOY_CONF = Path(__file__).resolve().parent / "toy_conf"
AAEXP = [sys.executable, "-m", "aaexp.commands.cli"]


def aaexp(*args: str, cwd: Path | None = None, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([*AAEXP, *args], cwd=cwd or REPO, env=full_env, capture_output=True, text=True, timeout=timeout)


def runs(uri: str):
    """All runs in the store as (experiment name, run) pairs."""
    from aaexp.tracking import store as tracking

    cl = tracking.client(uri)
    return [(e.name, r) for e in cl.search_experiments() for r in cl.search_runs([e.experiment_id])]
