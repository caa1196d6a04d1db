"""Time to target: the student scored on the evaluation grid during training, against the study's success line.

Target (conf/eval/aa.yaml thresholds): NMR-S below `nmr_s_db` in every band that holds tones and
HESR-R below `hesr_r_db` in every band, with the same instrument as `aaexp eval` (float64, the
teacher's side computed once). Time to target (TTT) is the wall time from the start of `aaexp
train` (target computation included) to the first evaluation at which the student passes.

Logged at MLflow step = optimiser updates: `eval/nmr_s/<band>`, `eval/hesr_r/<band>`,
`eval/excess_db` (the worst band's margin over its threshold: < 0 passes), `eval/pass`,
`perf/wall_s`; at the first pass `perf/time_to_target_s`, `perf/updates_to_target`,
`perf/tones_to_target` and `target/<band values>`.

With `eval.screen.enabled` each scoring is first a screen (the same tones in a short float32 window,
`screen/*`); the full grid runs only when the screen is within `eval.screen.margin_db` of the line.
With `eval.confirm.enabled` a pass on the full grid is checked on the confirmation grid (`confirm/*`,
tones no stopping or best-checkpoint choice saw); the target counts as met only when both pass.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from omegaconf import OmegaConf

from aaexp.aa.eval.evaluator import GridEvaluator
from aaexp.aa.eval.grid import confirm_grid


def excess_db(rows: list[dict], thresholds: dict[str, float]) -> float:
    """max over bands with tones of (value − threshold) for NMR-S and HESR-R; < 0 means the target is met."""
    worst = -math.inf
    for r in rows:
        if r["band"] == "all":
            continue
        for key, thr in (("nmr_s_db", thresholds["nmr_s_db"]), ("hesr_r_db", thresholds["hesr_r_db"])):
            v = r[key]
            if not math.isnan(v):
                worst = max(worst, v - thr)
    return worst


class TargetWatch:
    """Scores the student every `trainer.eval_every_s` seconds of training or `trainer.eval_every_n` updates.

    Args:
        teacher: the float64 teacher (its grid responses are computed on first use and kept).
        cfg_eval: the `eval` config node; trainer_cfg: the `trainer` node.
    """

    def __init__(self, teacher, cfg_eval, trainer_cfg, device):
        every_s, every_n = trainer_cfg.get("eval_every_s"), trainer_cfg.get("eval_every_n")
        self.every_s = None if every_s in (None, 0) else float(every_s)
        self.every_n = None if every_n in (None, 0) else int(every_n)
        self.stop_at_target = bool(trainer_cfg.stop_at_target)
        self.at_start = bool(trainer_cfg.eval_at_start)   # score the untrained copy too
        self.enabled = self.every_s is not None or self.every_n is not None
        self.evaluator = GridEvaluator(teacher, cfg_eval, device, progress=False) if self.enabled else None
        screen, confirm = cfg_eval.screen, cfg_eval.confirm
        self.screener = self.confirmer = None
        self.margin_db = float(screen.margin_db)
        if self.enabled and screen.enabled:
            short = OmegaConf.merge(cfg_eval, {"window_s": float(screen.window_s), "dtype": str(screen.dtype)})
            self.screener = GridEvaluator(teacher, short, device, progress=False)
        if self.enabled and confirm.enabled:
            self.confirmer = GridEvaluator(teacher, cfg_eval, device, progress=False,
                                           grid=confirm_grid(cfg_eval, self.evaluator.fs))
        self.seconds = 0.0   # wall time spent scoring, for the evaluation's share of a run
        self._last_t = time.perf_counter()
        self._last_step = 0

    def restart(self, step: int) -> None:
        """Count the next interval from now: at the start or resume of the loop, and after each evaluation
        (evaluation time is not training time)."""
        self._last_t, self._last_step = time.perf_counter(), step

    def due(self, step: int) -> bool:
        if not self.enabled:
            return False
        if self.every_n is not None and step - self._last_step >= self.every_n:
            return True
        return self.every_s is not None and time.perf_counter() - self._last_t >= self.every_s

    def score(self, student: torch.nn.Module, evaluator: GridEvaluator | None = None, prefix: str = "eval/"):
        """(EvalResult, metrics): the student's per-band table on the full grid (or `evaluator`'s) and its
        metrics, named `prefix`... (eval/, screen/, confirm/)."""
        result = (evaluator or self.evaluator).score(student, plots=False)
        rows = result.models["student"].rows
        excess = excess_db(rows, self.evaluator.thresholds)
        metrics = {prefix + k[len("eval/"):]: v for k, v in result.metrics.items()
                   if not k.startswith(("eval/teacher/", "eval/n_tones/"))}
        metrics[prefix + "excess_db"] = excess
        metrics[prefix + "pass"] = float(excess < 0)
        return result, metrics

    def check(self, student: torch.nn.Module) -> "Check":
        """Screen, then the full grid, then the confirmation grid, each only when the one before passed."""
        t0 = time.perf_counter()
        metrics: dict[str, float] = {}
        out = Check(None, None, metrics, screened_out=False, passed=False, confirmed=False)
        if self.screener is not None:
            _, m = self.score(student, self.screener, "screen/")
            metrics.update(m)
            if m["screen/excess_db"] >= self.margin_db:
                out.screened_out = True
        if not out.screened_out:
            out.result, m = self.score(student)
            metrics.update(m)
            out.passed = out.confirmed = m["eval/pass"] > 0
            if out.passed and self.confirmer is not None:
                out.confirm_result, m = self.score(student, self.confirmer, "confirm/")
                metrics.update(m)
                out.confirmed = m["confirm/pass"] > 0
        self.seconds += time.perf_counter() - t0
        metrics["perf/scoring_s"] = self.seconds
        return out


@dataclass
class Check:
    """One in-training scoring: the full grid's result (None when the screen stopped it) and the confirmation's."""

    result: object
    confirm_result: object
    metrics: dict
    screened_out: bool
    passed: bool        # the full grid passed
    confirmed: bool     # ... and the confirmation grid too (or no confirmation is configured)
