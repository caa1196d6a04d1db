"""Hydra callback: a sweep gets one MLflow parent run, created before any job starts.

Creating the SQLite store, the experiment and the parent here, in the launching process, means
parallel jobs (joblib) only ever add child runs to a database that already exists.

The parent's id and the store travel with each job as overrides (`tracking.parent_run_id=`,
`tracking.uri=`), not only as environment variables of this process: a launcher may run jobs in
fresh processes or on other hosts (submitit/SLURM, Ray) where neither this process's memory nor
its environment exists.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from aaexp.tracking import store as tracking

# Overrides the callback adds to every job; the runner keeps them out of run names and tags.
SWEEP_KEYS = ("tracking.parent_run_id", "tracking.uri", "tracking.optuna_trial")


def trial_watcher(cfg: DictConfig) -> tracking.Watcher | None:
    """The watcher a search asked this trial's job to run, else None.

    A search that prunes sets `tracking.optuna_trial` to `{_target_: <its watcher>, ...its arguments}`;
    the watcher sees each value the run logs and raises TrialPruned to end it. The runner knows no search.
    """
    spec = OmegaConf.select(cfg, "tracking.optuna_trial")
    if spec is None:
        return None
    from hydra.utils import instantiate

    return instantiate(spec)


def _quoted(value: str) -> str:
    """A Hydra override value that stays one string whatever it holds (`,` would start a sweep)."""
    return "'" + value.replace("'", "\\'") + "'"


def _pass_to_jobs(config: DictConfig, parent_id: str, uri: str) -> None:
    """Append the sweep's parent and store to the task overrides every job is composed from.

    Hydra reads `hydra.overrides.task` for the sweeper right after `on_multirun_start`, so what
    is added here is part of each job's own config, whichever launcher runs it and wherever.
    """
    with read_write(config.hydra), open_dict(config.hydra):
        task = [o for o in config.hydra.overrides.task if o.split("=", 1)[0].lstrip("+~") != "tracking.parent_run_id"]
        task.append(f"tracking.parent_run_id={parent_id}")
        if not any(o.split("=", 1)[0].lstrip("+") == "tracking.uri" for o in task):
            task.append(f"tracking.uri={_quoted(uri)}")
        config.hydra.overrides.task = task


class MlflowSweepCallback(Callback):
    def __init__(self) -> None:
        self.parent_id: str | None = None
        self._saved_env: dict[str, str | None] = {}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        uri = tracking.resolve_uri(config.tracking.uri)
        cl = tracking.client(uri)
        exp_id = tracking.get_or_create_experiment(cl, config.tracking.experiment_name)
        choice = config.hydra.runtime.choices.get("experiment") or config.study.name
        tags = {"study": config.study.name, "experiment": choice, "sweep": "parent",
                "sweep_dir": str(config.hydra.sweep.dir), "overrides": " ".join(config.hydra.overrides.task)}
        run = tracking.retry(cl.create_run, exp_id, run_name=f"sweep {choice}", tags=tags)
        self.parent_id = run.info.run_id
        _pass_to_jobs(config, self.parent_id, uri)
        atexit.register(self._close_if_open)  # a failed job aborts the sweep before on_multirun_end
        # Also in this process's environment, for jobs run here (basic launcher) or forked from it.
        for key, val in ((tracking.PARENT_ENV, self.parent_id), ("MLFLOW_TRACKING_URI", uri)):
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = val

    def _close_if_open(self) -> None:
        if self.parent_id is not None:
            with contextlib.suppress(Exception):
                cl = tracking.client()
                cl.set_tag(self.parent_id, "error", "a job of the sweep failed; see its child run")
                cl.set_terminated(self.parent_id, status="FAILED")
            self.parent_id = None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.parent_id is None:
            return
        cl = tracking.client()
        parent = cl.get_run(self.parent_id)
        children = cl.search_runs([parent.info.experiment_id], f"tags.`{tracking.PARENT_TAG}` = '{self.parent_id}'")
        pruned = [c for c in children if c.data.tags.get("optuna_pruned") == "true"]  # a search's outcome, not a failure
        failed = [c for c in children if c.info.status != "FINISHED" and c not in pruned]
        cl.set_tag(self.parent_id, "children", str(len(children)))
        if pruned:
            cl.set_tag(self.parent_id, "children_pruned", str(len(pruned)))
        cl.set_tag(self.parent_id, "children_failed", str(len(failed)))
        cl.set_terminated(self.parent_id, status="FAILED" if failed else "FINISHED")
        for key, val in self._saved_env.items():
            if val is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = val
        self.parent_id = None
