"""`run(cfg)`: seed, pick the device, open the MLflow run, hand over to the study, log the result.

A study is named by `study.entry` in its config (`module.function`), called as `entry(ctx)` and
returning a dict of final metrics; nothing here knows what a study does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig, OmegaConf

from aaexp.core.checks import check_numbers
from aaexp.core.config import flatten
from aaexp.core.config_keys import check_keys
from aaexp.core.device import cpu_threads, resolve_device
from aaexp.core.errors import AaexpError, RunTerminated, Terminated, TrialPruned
from aaexp.core.progress import progress_enabled
from aaexp.core.seeding import seed_everything
from aaexp.core.signals import signals_end_the_run
from aaexp.tracking import store as tracking
from aaexp.tracking.sweep import SWEEP_KEYS, trial_watcher

log = logging.getLogger("aaexp")
RUN_ID_FILE = "mlflow_run_id.txt"


@dataclass
class RunContext:
    """Everything a study needs from the spine."""

    cfg: DictConfig
    device: torch.device
    tracker: tracking.Tracker
    out_dir: Path
    progress: bool
    resumed: bool = False
    log: logging.Logger = field(default_factory=lambda: log)
    started: float = field(default_factory=time.perf_counter)   # when `aaexp train` began (perf_counter)


def _hydra_info() -> tuple[Path | None, str | None, list[str]]:
    """(output dir, +experiment choice, task overrides) when running under a Hydra app."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None, None, []
    hc = HydraConfig.get()
    # The sweep's own plumbing (parent id, store) names no choice of the run's.
    task = [o for o in hc.overrides.task if o.split("=", 1)[0].lstrip("+") not in SWEEP_KEYS]
    return Path(hc.runtime.output_dir), hc.runtime.choices.get("experiment"), task


def _owner(d: Path) -> str:
    """The run id a run folder records ('' while a starting run has claimed it but has no id yet)."""
    return (d / RUN_ID_FILE).read_text().strip()


def _resume_dir(cfg: DictConfig, out_dir: Path, experiment: str | None) -> Path | None:
    """`resume=<run dir>` as given; `resume=true`: the newest unfinished run of this experiment.

    Either way the folder must belong to the run it names: its RUN_ID_FILE and the run's
    `out_dir` tag must agree, or a resume would load another run's checkpoints.
    """
    spec = cfg.get("resume")
    if spec in (None, False) or str(spec).lower() in ("false", "none", "null"):
        return None
    cl = tracking.client(cfg.tracking.uri)
    if str(spec).lower() != "true":
        d = Path(str(spec))
        if not (d / RUN_ID_FILE).is_file():
            raise AaexpError(f"resume={spec}: not a run directory (no {RUN_ID_FILE} in it)")
        run_id = _owner(d)
        try:
            tagged = cl.get_run(run_id).data.tags.get("out_dir")
        except Exception as exc:
            raise AaexpError(f"resume={spec}: run {run_id or '(none)'} named in {RUN_ID_FILE} is not in the "
                             f"tracking store {cl.tracking_uri}") from exc
        if tagged is not None and Path(tagged).resolve() != d.resolve():
            raise AaexpError(f"resume={spec}: the folder's run {run_id} was started in {tagged}; this folder "
                             f"belongs to another run, refusing to mix their files")
        return d
    exp = cl.get_experiment_by_name(cfg.tracking.experiment_name)
    if exp is not None:
        flt = f"tags.experiment = '{experiment or 'none'}' and attributes.status != 'FINISHED'"
        for r in cl.search_runs([exp.experiment_id], flt, order_by=["attributes.start_time DESC"], max_results=20):
            d = Path(r.data.tags.get("out_dir", ""))
            if d.is_dir() and (d / RUN_ID_FILE).is_file():
                if _owner(d) == r.info.run_id:
                    return d
                log.warning("resume=true: skipping run %s, its folder %s belongs to run %s", r.info.run_id, d, _owner(d))
    raise AaexpError(f"resume=true: no unfinished run of experiment '{experiment}' to resume")


def _claim(out_dir: Path) -> Path:
    """Take `out_dir` for a new run, atomically: two runs never share a folder (logs, checkpoints, students)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RUN_ID_FILE
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        owner = _owner(out_dir) or "being started by another process"
        raise AaexpError(f"{out_dir} already belongs to run {owner}; give this run its own folder "
                         f"(hydra.run.dir=...) or continue that run with resume={out_dir}") from None
    return path


def run(cfg: DictConfig, entry: Callable[[RunContext], dict] | None = None) -> Any:
    """Drive one run; returns `optimized_metric` (for Hydra sweepers) or the metrics dict."""
    with signals_end_the_run() as own:
        try:
            return _run(cfg, entry)
        except Terminated as exc:
            if not own:  # the aaexp CLI's own handler: it reports and exits 143
                raise
            # A job process of a launcher (submitit/SLURM, Ray): an ordinary exception, so the launcher
            # records the job as failed (submitit writes its result file) instead of dying without a word.
            raise RunTerminated(f"the run was ended by {exc} (marked KILLED, checkpoints kept; resume=true continues it)") from exc


def _run(cfg: DictConfig, entry: Callable[[RunContext], dict] | None) -> Any:
    from hydra.utils import get_method

    started = time.perf_counter()
    check_keys(cfg)
    check_numbers(cfg)
    seed_everything(cfg.get("seed"))
    device = resolve_device(cfg.device)
    out_dir, experiment, overrides = _hydra_info()
    out_dir = out_dir or Path(tempfile.mkdtemp(prefix="aaexp-"))
    try:
        entry = entry or get_method(cfg.study.entry)
    except Exception as exc:
        raise AaexpError(f"study.entry={cfg.study.entry!r} cannot be imported: {exc}") from exc

    resume = _resume_dir(cfg, out_dir, experiment)
    if resume is not None:
        out_dir = resume
    claim = _claim(out_dir) if resume is None else None
    run_name = " ".join([experiment or cfg.study.name, *[o for o in overrides if "experiment=" not in o]])
    commit, dirty = tracking.git_commit()
    tags = {
        "study": cfg.study.name,
        "experiment": experiment or "none",
        "device": str(device),
        "out_dir": str(out_dir.resolve()),
        "overrides": " ".join(overrides),
        **({"mlflow.source.git.commit": commit, "git_dirty": dirty} if commit else {}),
        **{f"version.{k}": v for k, v in tracking.package_versions().items()},
    }
    run_id = (resume / RUN_ID_FILE).read_text().strip() if resume else None
    log.info("study=%s experiment=%s device=%s out_dir=%s", cfg.study.name, experiment, device, out_dir)
    tracker = None
    try:
        with contextlib.ExitStack() as stack:
            try:
                tracker = stack.enter_context(
                    tracking.start_run(cfg.tracking.experiment_name, run_name, cfg.tracking.uri, tags, run_id,
                                        cfg.tracking.get("parent_run_id")))
            except BaseException:
                if claim is not None:  # no run was created: free the folder
                    claim.unlink(missing_ok=True)
                raise
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / RUN_ID_FILE).write_text(tracker.run_id)
            if resume is None:
                tracker.log_params(flatten(cfg))
                tracker.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
            ctx = RunContext(cfg, device, tracker, out_dir, progress_enabled(cfg.progress), resume is not None,
                             started=started)
            watcher = trial_watcher(cfg)
            if watcher is not None:  # a trial of a search that prunes: it sees each logged value, ends the run when told
                tracker.watchers.append(watcher)
            stack.enter_context(cpu_threads(cfg.trainer.get("cpu_threads"), device))   # once, for every study
            metrics = entry(ctx) or {}
            tracker.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
    except TrialPruned as exc:  # the run is closed KILLED with optuna_pruned=true; the sweeper tells the study PRUNED
        log.info("run %s %s", tracker.run_id if tracker else "?", exc)
        return {"optuna_pruned": True, "step": exc.step, "value": exc.value}
    exp_id = tracker.client.get_run(tracker.run_id).info.experiment_id
    print(f"Run {tracker.run_id} logged to MLflow ({tracker.client.tracking_uri}).\n"
          f"Open it with `aaexp ui`, then {tracking.ui_url('http://127.0.0.1:5000', exp_id, tracker.run_id)}", flush=True)
    name = cfg.get("optimized_metric")
    if name:
        if name not in metrics:
            raise AaexpError(f"optimized_metric={name!r} is not among the run's metrics: {sorted(metrics)}")
        return metrics[name]
    return metrics
