"""Time to target: the student scored on the evaluation grid during training, against the study's success line.

Target (conf/eval/aa.yaml thresholds): NMR-S below `nmr_s_db` in every band that holds tones and
HESR-R below `hesr_r_db` in every band, with the same instrument as `aaexp eval` (float64, the
teacher's side computed once). Time to target (TTT) is the wall time from the start of `aaexp
train` (target computation included) to the first evaluation at which the student passes.

Logged at MLflow step = optimiser updates: `eval/nmr_s/<band>`, `eval/hesr_r/<band>`,
`eval/excess_db` (the worst band's margin over its threshold: < 0 passes), `eval/pass`,
`perf/wall_s`; at the first pass `perf/time_to_target_s`, `perf/updates_to_target`,
`perf/tones_to_target` and `target/<band values>`.
"""

from __future__ import annotations

import math
import time

import torch

from aaexp.aa.eval.evaluator import GridEvaluator


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

    def score(self, student: torch.nn.Module):
        """(EvalResult, metrics): the student's per-band table and its `eval/*` metrics."""
        result = self.evaluator.score(student, plots=False)
        rows = result.models["student"].rows
        excess = excess_db(rows, self.evaluator.thresholds)
        metrics = {k: v for k, v in result.metrics.items() if not k.startswith(("eval/teacher/", "eval/n_tones/"))}
        metrics["eval/excess_db"] = excess
        metrics["eval/pass"] = float(excess < 0)
        return result, metrics
