"""MLflow tracking: one store shared by `train`, `eval`, `report` and `ui`.

Store: `tracking.uri=` beats `MLFLOW_TRACKING_URI`, which beats `sqlite:///mlflow.db` in the
working directory; artifacts go to `mlartifacts/` beside a SQLite database.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol

DEFAULT_URI = "sqlite:///mlflow.db"
PARENT_ENV = "AAEXP_PARENT_RUN_ID"
PARENT_TAG = "mlflow.parentRunId"


def resolve_uri(uri: str | None = None) -> str:
    """The tracking URI in force, with a relative SQLite path made absolute (jobs may chdir)."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    elif "://" not in uri:  # a bare directory: MLflow's file store
        uri = str(Path(uri).resolve())
    return uri


def artifact_root(uri: str) -> str | None:
    """Artifacts beside a SQLite database; other stores keep MLflow's own default."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
    return None


def retry(fn, *args, attempts: int = 8, **kwargs):
    """SQLite allows one writer at a time; parallel sweep jobs back off instead of failing."""
    for i in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # mlflow wraps sqlite3.OperationalError in several ways
            if "locked" not in str(exc).lower() or i == attempts - 1:
                raise
            time.sleep(0.05 * 2**i)


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on a SQLite store's folder while MLflow creates or migrates its schema.

    Opening a new store runs MLflow's migrations; two processes doing it at once collide
    ("duplicate column name"). The lock is on the folder, so no lock file is left behind.
    """
    if not uri.startswith("sqlite:///"):
        yield
        return
    try:
        import fcntl
    except ImportError:  # no flock (Windows): MLflow's own behaviour
        yield
        return
    folder = Path(uri[len("sqlite:///"):]).parent
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def client(uri: str | None = None):
    from mlflow.tracking import MlflowClient

    uri = resolve_uri(uri)
    with _store_lock(uri):  # MlflowClient opens the store (and creates its schema) right here
        return MlflowClient(tracking_uri=uri)


# MLflow 3's UI opens an experiment on its GenAI overview (traces) unless it is marked as model
# training: the kind tag does it for UIs that read it; from about 3.10 the UI follows a global
# GenAI / Model training switch instead (GenAI by default), which a link's `workflowType` sets.
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"
UI_QUERY = "workflowType=machine_learning"


def run_until_interrupted(cmd: list[str], stop_timeout_s: float) -> int:
    """Run a server process in the foreground; Ctrl-C stops it (exit 0) instead of leaving it behind."""
    proc = subprocess.Popen(cmd)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=stop_timeout_s)
        return 0


def ui_url(base: str, experiment_id: str | None = None, run_id: str | None = None) -> str:
    """A link into the MLflow UI that opens on the runs table (or the run), not the GenAI overview."""
    path = "#/experiments" + (f"/{experiment_id}" if experiment_id else "") + (f"/runs/{run_id}" if run_id else "")
    return f"{base.rstrip('/')}/{path}?{UI_QUERY}"


def get_or_create_experiment(cl, name: str) -> str:
    exp = retry(cl.get_experiment_by_name, name)
    if exp is not None:
        return exp.experiment_id
    root = artifact_root(cl.tracking_uri)
    try:
        return retry(cl.create_experiment, name, artifact_location=f"{root}/{name}" if root else None,
                      tags={KIND_TAG: KIND})
    except Exception:  # another process created it first
        exp = retry(cl.get_experiment_by_name, name)
        if exp is None:
            raise
        return exp.experiment_id


def git_commit(path: Path | None = None) -> tuple[str | None, bool]:
    """(commit, dirty) of the repository holding `path` (or the cwd), or (None, False)."""
    for where in [Path.cwd(), path or Path(__file__).resolve().parent]:
        try:
            sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5)
            if sha.returncode == 0:
                dirty = subprocess.run(["git", "status", "--porcelain", "-uno"], cwd=where, capture_output=True, text=True, timeout=5)
                return sha.stdout.strip(), bool(dirty.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    return None, False


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ["aaexp", "torch", "numpy", "scipy", "librosa", "mlflow", "hydra-core", "neural-amp-modeler"]:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


class Watcher(Protocol):
    """Sees each batch of values a run logs; may end the run by raising TrialPruned (a search's pruner)."""

    def __call__(self, metrics: Mapping[str, float], step: int | None) -> None: ...


class Tracker:
    """Logs to one MLflow run by id (no global `mlflow.active_run` state, so jobs cannot mix up)."""

    def __init__(self, cl, run_id: str):
        self.client = cl
        self.run_id = run_id
        self.default_step = 0   # MLflow step of values logged without one (a study may move it on)
        self.watchers: list[Watcher] = []  # called after each log_metrics (a search's pruning reporter)

    # -- values ----------------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(str(k), str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            retry(self.client.log_batch, self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        step = self.default_step if step is None else step
        items = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
        for i in range(0, len(items), 1000):
            retry(self.client.log_batch, self.run_id, metrics=items[i : i + 1000])
        for watch in self.watchers:
            watch(metrics, step)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        retry(self.client.log_batch, self.run_id, tags=[RunTag(str(k), str(v)[:5000]) for k, v in tags.items()])

    # -- files -----------------------------------------------------------------------------------
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_text(self, text: str, name: str) -> None:
        self.client.log_text(self.run_id, text, name)

    def log_dict(self, data: Mapping, name: str) -> None:
        self.log_text(json.dumps(data, indent=2, default=str), name)

    def log_figure(self, fig, name: str) -> None:
        """Save a matplotlib figure as PNG under `name` (e.g. 'plots/bands.png') and close it."""
        import matplotlib.pyplot as plt

        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / Path(name).name
            fig.savefig(p, dpi=120, bbox_inches="tight")
            self.log_artifact(p, str(Path(name).parent) if Path(name).parent != Path(".") else None)
        plt.close(fig)


@contextlib.contextmanager
def start_run(
    experiment_name: str,
    run_name: str | None = None,
    uri: str | None = None,
    tags: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    parent_run_id: str | None = None,
) -> Iterator[Tracker]:
    """Open (or reopen, with `run_id`) a run; an exception marks it FAILED with the message as a tag.

    Inside a sweep the run is a child of `parent_run_id` (the job's `tracking.parent_run_id`, set by
    the multirun callback), else of env AAEXP_PARENT_RUN_ID when that is set.
    """
    cl = client(uri)
    if run_id is None:
        exp_id = get_or_create_experiment(cl, experiment_name)
        all_tags = {k: str(v) for k, v in (tags or {}).items()}
        parent = parent_run_id or os.environ.get(PARENT_ENV)
        if parent:
            all_tags[PARENT_TAG] = parent
        run = retry(cl.create_run, exp_id, run_name=run_name, tags=all_tags)
        run_id = run.info.run_id
    else:
        retry(cl.update_run, run_id, status="RUNNING")
        # The interruption it resumes from is over; a new one sets its own tag.
        if "error" in retry(cl.get_run, run_id).data.tags:
            retry(cl.delete_tag, run_id, "error")
    tracker = Tracker(cl, run_id)
    try:
        yield tracker
    except BaseException as exc:
        from aaexp.core.errors import TrialPruned

        status = "KILLED" if isinstance(exc, (KeyboardInterrupt, TrialPruned)) else "FAILED"
        tags = ({"optuna_pruned": "true", "optuna_pruned_step": str(exc.step)} if isinstance(exc, TrialPruned)
                else {"error": f"{type(exc).__name__}: {exc}"})
        with contextlib.suppress(Exception):
            tracker.set_tags(tags)
        with contextlib.suppress(Exception):
            retry(cl.set_terminated, run_id, status=status)
        raise
    else:
        retry(cl.set_terminated, run_id, status="FINISHED")
