"""Hydra callback: a sweep gets one MLflow parent run, created before any job starts.

Creating the SQLite store, the experiment and the parent here, in the launching process, means
parallel jobs (joblib) only ever add child runs to a database that already exists.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from aaexp import tracking


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
        run = tracking._retry(cl.create_run, exp_id, run_name=f"sweep {choice}", tags=tags)
        self.parent_id = run.info.run_id
        atexit.register(self._close_if_open)  # a failed job aborts the sweep before on_multirun_end
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
        failed = [c for c in children if c.info.status != "FINISHED"]
        cl.set_tag(self.parent_id, "children", str(len(children)))
        cl.set_tag(self.parent_id, "children_failed", str(len(failed)))
        cl.set_terminated(self.parent_id, status="FAILED" if failed else "FINISHED")
        for key, val in self._saved_env.items():
            if val is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = val
        self.parent_id = None
