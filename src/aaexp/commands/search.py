"""An Optuna search as a Hydra sweeper that aaexp drives: `aaexp train hparams_search=optuna_aa`.

Why not hydra-optuna-sweeper: its newest release (1.3.0) pins optuna<3, which would replace the
current Optuna (5.x) in the environment. This sweeper uses the installed Optuna directly and keeps
everything else Hydra's: each trial is one Hydra job, so launchers (joblib, submitit/SLURM) run
trials and the sweep callback makes each one a child of the search's MLflow parent run.

Resumable: trials live in a persistent storage (`storage`, `load_if_exists`); a restarted search
counts the trials that finished and runs only the rest of `n_trials`.
"""

from __future__ import annotations

import fnmatch
import logging
import math
from typing import Any, Mapping, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

from aaexp.core.errors import AaexpError
from aaexp.tracking import store as tracking

log = logging.getLogger("aaexp.search")


# -- objectives: one scalar, lower is better --------------------------------------------------------
def aa_excess(metrics: Mapping[str, float], nmr_line: float = -10.0, hesr_line: float = -15.0) -> float:
    """`eval/excess_db` when the run logged it, else the worst band's margin over its line (< 0 passes)."""
    if _finite(metrics.get("eval/excess_db")):
        return float(metrics["eval/excess_db"])
    margins = [v - nmr_line for k, v in metrics.items() if k.startswith("eval/nmr_s/") and _finite(v)]
    margins += [v - hesr_line for k, v in metrics.items() if k.startswith("eval/hesr_r/") and _finite(v)]
    if not margins:
        raise AaexpError("objective aa_excess: the run logged neither eval/excess_db nor eval/nmr_s/<band>, eval/hesr_r/<band>")
    return max(margins)


def eq_quality(metrics: Mapping[str, float]) -> float:
    """Share of decoded descriptor centroids outside the plugin's ranges, minus the latent silhouette."""
    sil, valid = metrics.get("eval/silhouette/all"), metrics.get("eval/valid_share/centroids")
    if not (_finite(sil) and _finite(valid)):
        raise AaexpError("objective eq_quality: eval/silhouette/all or eval/valid_share/centroids is missing or undefined")
    return (1.0 - valid) - sil


def worst_of(pattern: str, metrics: Mapping[str, float]) -> float:
    """The largest value among the metrics whose names match the glob (one name: that metric)."""
    vals = [v for k, v in metrics.items() if fnmatch.fnmatchcase(k, pattern) and _finite(v)]
    if not vals:
        raise AaexpError(f"objective {pattern!r}: no finite metric of the run matches it; it logged {sorted(metrics)}")
    return max(vals)


def objective_value(name: str, metrics: Mapping[str, float], cfg: DictConfig | None = None) -> float:
    if name == "aa_excess":
        th = OmegaConf.select(cfg, "eval.thresholds") if cfg is not None else None
        return aa_excess(metrics, *((th.nmr_s_db, th.hesr_r_db) if th is not None else ()))
    if name == "eq_quality":
        return eq_quality(metrics)
    return worst_of(name, metrics)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


# -- the sweeper ------------------------------------------------------------------------------------
def _suggest(trial, name: str, spec: Mapping[str, Any]) -> Any:
    kind = spec.get("type", "float")
    if kind == "float":
        return trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log", False)))
    if kind == "int":
        return trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log", False)))
    if kind == "categorical":
        return trial.suggest_categorical(name, list(spec["choices"]))
    raise AaexpError(f"search space {name}: type {kind!r} is not one of float, int, categorical")


# -- pruning: the trial's own job reports to the shared storage ---------------------------------------
PRUNER_ATTR = "aaexp.pruner"  # study user attribute: the pruner the driver chose, read back by each trial's job
PRUNERS = ("none", "median")


def make_pruner(spec: Mapping[str, Any]):
    import optuna

    kind = spec.get("type", "none")
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=int(spec.get("n_startup_trials", 2)),
                                           n_warmup_steps=int(spec.get("n_warmup_steps", 0)))
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise AaexpError(f"hydra.sweeper.pruner.type={kind!r}: one of {', '.join(PRUNERS)}")


class PruningReporter:
    """Tracker watcher in a trial's job: each time the run logs `pruner.metric` (a per-epoch validation
    value), report it to the study's storage as the trial's intermediate value and raise TrialPruned
    when the study's pruner says so. The job may be another process or host (submitit/SLURM, Ray): it
    gets the storage, study and trial number as the override `tracking.optuna_trial` (tracking.sweep.trial_watcher)."""

    def __init__(self, storage: str, study: str, number: int):
        import optuna

        store = optuna.storages.get_storage(str(storage))
        study_id = store.get_study_id_from_name(str(study))
        self.pruner_spec = dict(store.get_study_user_attrs(study_id).get(PRUNER_ATTR) or {})
        self.metric = self.pruner_spec.get("metric")
        loaded = optuna.load_study(study_name=str(study), storage=store, pruner=make_pruner(self.pruner_spec))
        self.trial = optuna.trial.Trial(loaded, store.get_trial_id_from_study_id_trial_number(study_id, int(number)))

    def __call__(self, metrics: Mapping[str, float], step: int | None) -> None:
        from aaexp.core.errors import TrialPruned

        value = metrics.get(self.metric) if self.metric else None
        if not _finite(value) or step is None:
            return
        self.trial.report(float(value), int(step))
        if self.trial.should_prune():
            raise TrialPruned(int(step), float(value))


def _sweep_value(arguments: Sequence[str], key: str) -> str | None:
    """The value of `key=...` among the task overrides (the callback puts the parent's id there)."""
    for o in OverridesParser.create().parse_overrides(list(arguments)):
        if o.key_or_group == key:
            return o.value()
    return None


class OptunaSweeper(Sweeper):
    def __init__(self, study_name: str, storage: str | None, n_trials: int, objective: str, space: Mapping[str, Any],
                 direction: str = "minimize", seed: int | None = None, n_jobs: int = 1, pruner: Mapping[str, Any] | None = None,
                 **_: Any) -> None:
        self.study_name, self.storage, self.n_trials, self.objective = study_name, storage, n_trials, objective
        self.space = {str(k): dict(v) for k, v in OmegaConf.to_container(OmegaConf.create(dict(space or {}))).items()}
        self.direction, self.seed, self.n_jobs = direction, seed, n_jobs
        self.pruner = {str(k): v for k, v in OmegaConf.to_container(OmegaConf.create(dict(pruner or {"type": "none"}))).items()}

    def _check(self) -> None:
        """In setup(), not __init__: Hydra wraps what a constructor raises in a multi-line instantiation error."""
        if int(self.n_trials) < 1 or int(self.n_jobs) < 1:
            raise AaexpError(f"hydra.sweeper: n_trials={self.n_trials} and n_jobs={self.n_jobs} must both be at least 1")
        self.n_trials, self.n_jobs = int(self.n_trials), int(self.n_jobs)
        if self.direction not in ("minimize", "maximize"):
            raise AaexpError(f"hydra.sweeper.direction={self.direction!r}: minimize or maximize")
        if not self.space:
            raise AaexpError("hydra.sweeper.space is empty: name at least one key to search")
        if self.pruner.get("type", "none") not in PRUNERS:
            raise AaexpError(f"hydra.sweeper.pruner.type={self.pruner.get('type')!r}: one of {', '.join(PRUNERS)}")
        if self.pruner.get("type", "none") != "none":
            if not self.pruner.get("metric"):
                raise AaexpError("hydra.sweeper.pruner.metric: name the per-epoch validation metric the pruner watches (e.g. val/loss)")
            if not self.storage:
                raise AaexpError("hydra.sweeper.pruner: trials report to the study from their own jobs, so it needs a storage "
                                 "(hydra.sweeper.storage=sqlite:///optuna.db), not an in-memory study")

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self._check()
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context, task_function=task_function,
                                                                config=config)

    def _study(self):
        try:
            import optuna
        except ImportError as exc:
            raise AaexpError("hparams_search=optuna_*: Optuna is not installed; pip install -e '.[optuna]'") from exc
        from optuna.trial import TrialState

        sampler = optuna.samplers.TPESampler(seed=self.seed)
        study = optuna.create_study(study_name=self.study_name, storage=self.storage, sampler=sampler,
                                    pruner=make_pruner(self.pruner), direction=self.direction, load_if_exists=True)
        study.set_user_attr(PRUNER_ATTR, self.pruner)
        # A trial left RUNNING is one whose search was killed: it never reports, so close it.
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study.tell(t.number, state=TrialState.FAIL)
            log.warning("trial %d was left running by an interrupted search; marked FAIL, it is run again", t.number)
        return study, TrialState

    def sweep(self, arguments: list[str]) -> Any:
        study, TrialState = self._study()
        done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
        left = max(0, self.n_trials - done)
        print(f"Optuna study '{self.study_name}' ({self.storage or 'in memory'}): {done} of {self.n_trials} trials done, "
              f"running {left}", flush=True)
        while left > 0:
            trials = [study.ask() for _ in range(min(self.n_jobs, left))]
            jobs = [[*arguments, *(f"{k}={t.params[k]!r}" if isinstance(t.params[k], str) else f"{k}={t.params[k]}"
                                   for k in self._suggest_all(t)), *self._trial_override(t)] for t in trials]
            try:
                # job number = trial number: a resumed search in the same sweep dir gets folders of its own
                returns = self.launcher.launch(jobs, initial_job_idx=trials[0].number)
            except BaseException:
                for t in trials:
                    study.tell(t, state=TrialState.FAIL)
                raise
            for t, ret in zip(trials, returns):
                try:
                    metrics = ret.return_value  # a failed job raises here
                    if isinstance(metrics, Mapping) and metrics.get("optuna_pruned"):
                        study.tell(t, state=TrialState.PRUNED)
                        print(f"trial {t.number}: pruned at step {metrics['step']} ({self.pruner['metric']} = "
                              f"{metrics['value']:.6g})  {t.params}", flush=True)
                        continue
                    value = metrics if isinstance(metrics, (int, float)) else objective_value(self.objective, metrics, ret.cfg)
                except BaseException:
                    for u in trials[trials.index(t):]:
                        study.tell(u, state=TrialState.FAIL)
                    raise
                study.tell(t, value)
                print(f"trial {t.number}: {self.objective} = {value:.6g}  {t.params}", flush=True)
            left -= len(trials)
        return self._report_best(study, arguments)

    def _trial_override(self, trial) -> list[str]:
        """With a pruner, the job reports to the study itself: it gets where the study is and which trial it is."""
        if self.pruner.get("type", "none") == "none":
            return []
        storage = _absolute_sqlite(self.storage)
        target = f"{PruningReporter.__module__}.{PruningReporter.__qualname__}"
        return [f"tracking.optuna_trial={{_target_:'{target}',storage:'{storage}',study:'{self.study_name}',number:{trial.number}}}"]

    def _suggest_all(self, trial) -> list[str]:
        for name, spec in self.space.items():
            _suggest(trial, name, spec)
        return list(self.space)

    def _report_best(self, study, arguments: Sequence[str]) -> dict:
        from optuna.trial import TrialState

        if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            print("no trial ran to the end (all pruned): no best trial", flush=True)
            return {"best_params": None, "best_value": None}
        best = study.best_trial
        print(f"best trial {best.number}: {self.objective} = {best.value:.6g}; params: "
              + " ".join(f"{k}={v}" for k, v in best.params.items()), flush=True)
        parent = _sweep_value(arguments, "tracking.parent_run_id")
        if parent:
            cl = tracking.client(_sweep_value(arguments, "tracking.uri"))
            tags = {"optuna.study": self.study_name, "optuna.best_trial": str(best.number),
                    "optuna.best_value": repr(best.value), "optuna.objective": self.objective,
                    **{f"best.{k}": str(v) for k, v in best.params.items()}}
            for k, v in tags.items():
                tracking.retry(cl.set_tag, parent, k, v)
        return {"best_params": best.params, "best_value": best.value}


def _absolute_sqlite(url: str) -> str:
    """sqlite:///optuna.db is relative to where the search runs; a job may start elsewhere (its own folder, a node)."""
    from pathlib import Path

    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(url[len("sqlite:///"):]).resolve())
    return url
