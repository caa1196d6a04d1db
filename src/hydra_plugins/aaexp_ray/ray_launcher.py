"""A Hydra launcher that runs each job of a sweep as one Ray task: `aaexp train -m ... hydra/launcher=ray`.

Why not hydra-ray-launcher: its newest release (1.2.2) requires cloudpickle<3, which would move the
cloudpickle that MLflow, joblib and submitit use back to 2.x, and ray[default] plus boto3 for its AWS
autoscaler. This launcher uses Ray's own API (`ray.init`, `ray.remote`, `ray.get`) and nothing else;
each task calls Hydra's `run_job` exactly as Hydra's basic launcher does in its loop.

Local Ray by default (`ray.init(num_cpus=...)` in the launching process), or an existing cluster
with `hydra.launcher.address=ray://HEAD:10001` (or `auto` on a node of the cluster). Every node then
needs the same aaexp install and the same paths (the sweep dir, teachers, `data.cache_dir`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


def _run_one(hydra_context: HydraContext, config: DictConfig, overrides: list[str], idx: int, task_function: TaskFunction,
             singleton_state: Mapping[Any, Any], cwd: str) -> JobReturn:
    """One job, inside a Ray worker: compose its config, then Hydra's own `run_job` (as the joblib launcher does)."""
    if os.path.isdir(cwd):  # relative paths (data.cache_dir, outputs) mean what they mean where the sweep was started
        os.chdir(cwd)
    setup_globals()
    Singleton.set_state(singleton_state)
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"ray_{_task_id()}"
        sweep_config.hydra.job.num = idx
    HydraConfig.instance().set_config(sweep_config)
    return run_job(hydra_context=hydra_context, task_function=task_function, config=sweep_config,
                   job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")


def _task_id() -> str:
    import ray

    return ray.get_runtime_context().get_task_id() or "local"


class RayLauncher(Launcher):
    def __init__(self, address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None,
                 init: Mapping[str, Any] | None = None, remote: Mapping[str, Any] | None = None, **_: Any) -> None:
        self.address, self.num_cpus, self.num_gpus = address, num_cpus, num_gpus
        self.init_kwargs = _plain(init)
        self.remote_kwargs = _plain(remote)
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def _start_ray(self):
        try:
            import ray
        except ImportError as exc:
            from aaexp.core.errors import AaexpError

            raise AaexpError("hydra/launcher=ray: Ray is not installed; pip install -e '.[ray]'") from exc
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, **self.init_kwargs}
            if self.address:  # an existing cluster: its resources are its own
                kwargs["address"] = self.address
            else:
                kwargs.update({k: v for k, v in (("num_cpus", self.num_cpus), ("num_gpus", self.num_gpus)) if v is not None})
            log.info("Starting Ray: ray.init(%s)", ", ".join(f"{k}={v!r}" for k, v in kwargs.items()))
            ray.init(**kwargs)
        return ray

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        ray = self._start_ray()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info("Ray launcher: %d jobs on %s, sweep output dir %s", len(job_overrides),
                 self.address or "a local Ray", sweep_dir)
        # max_calls=1: each job gets a fresh worker process (no torch threads, signal handlers or
        # module state carried from the previous job), like a joblib or submitit job.
        task = ray.remote(**{"max_calls": 1, **self.remote_kwargs})(_run_one)
        state, cwd = Singleton.get_state(), os.getcwd()
        refs = []
        for i, overrides in enumerate(job_overrides):
            idx = initial_job_idx + i
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            refs.append(task.remote(self.hydra_context, self.config, list(overrides), idx, self.task_function, state, cwd))
        try:
            returns = ray.get(refs)
        except BaseException:  # Ctrl-C / SIGTERM of the sweep, or a worker lost: stop what still runs
            for ref in refs:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # already finished
                    pass
            raise
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return returns


def _plain(node: Any) -> dict:
    if node is None:
        return {}
    return dict(OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node)
