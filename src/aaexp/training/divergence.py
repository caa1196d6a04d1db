"""Divergence short of NaN: a training loss that grows past `trainer.divergence_factor` × its start.

A too-high learning rate can drive the loss to 1e26 without ever reaching NaN, and the run used to
finish as FINISHED without a word. The watch compares each step's loss with the largest of the first
`trainer.divergence_baseline_steps` steps of this process (a resumed run measures from its first step after resuming) and, by
`trainer.on_divergence`, warns once and tags the run (`warn`) or stops it as diverged (`stop`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

from aaexp.core.errors import AaexpError, TrainingDiverged

ACTIONS = ("warn", "stop")
TAG = "diverged"


def last_good(last: Path, best: Path | None = None) -> str:
    """Name the checkpoint that is really on disk (a NaN in epoch 1 comes before the first resumable one)."""
    if last.is_file():
        return f"last good checkpoint: {last}"
    if best is not None and best.is_file():
        return f"no resumable checkpoint yet (it broke in the first epoch); best model so far: {best}"
    return f"no checkpoint was written to {last.parent} before it"


class DivergenceWatch:
    def __init__(self, factor: float | None, action: str, tracker, log, last_good: Callable[[], str], baseline_steps: int = 1):
        if action not in ACTIONS:
            raise AaexpError(f"trainer.on_divergence={action!r} is not one of {', '.join(ACTIONS)}")
        self.factor, self.action, self.tracker, self.log, self.last_good = factor, action, tracker, log, last_good
        self.start: float | None = None
        self.flagged = False
        self.seen, self.baseline_steps = 0, max(1, int(baseline_steps))

    @classmethod
    def from_cfg(cls, trainer_cfg, ctx, last_good: Callable[[], str]) -> "DivergenceWatch":
        """From `trainer.divergence_factor` (absent or null: never checked), `on_divergence`, `divergence_baseline_steps`."""
        factor = trainer_cfg.get("divergence_factor")   # a study without the keys (TNCA, EQ) is not watched
        if factor is None:
            return cls(None, ACTIONS[0], ctx.tracker, ctx.log, last_good)
        return cls(float(factor), str(trainer_cfg.on_divergence), ctx.tracker, ctx.log, last_good,
                   int(trainer_cfg.divergence_baseline_steps))

    def check(self, loss: float, epoch: int, step: int) -> None:
        """Call with each finite training loss (1-based epoch and step)."""
        if self.factor is None or self.flagged or not math.isfinite(loss):
            return
        if self.seen < self.baseline_steps:
            # The start is the largest loss of the first steps: one quiet batch must not set the scale
            # (a 16-tone batch's loss varies by 10^3 with its levels). A loss in bels (loss.*_form=db)
            # can be below zero, where a growth factor means nothing: then the check is off.
            self.seen += 1
            self.start = loss if self.start is None else max(self.start, loss)
            if self.seen == self.baseline_steps and not self.start > 0:
                self.start = math.nan
            return
        if self.start is None or math.isnan(self.start):
            return
        if loss <= self.factor * self.start:
            return
        msg = (f"loss grew to {loss:.3g} at epoch {epoch}, step {step}: {loss / self.start:.3g}x its start "
               f"{self.start:.3g} (trainer.divergence_factor={self.factor:g}); try a lower trainer.lr")
        if self.action == "stop":
            raise TrainingDiverged(f"{msg}; {self.last_good()}")
        self.flagged = True
        self.log.warning("diverging: %s (the run goes on: trainer.on_divergence=warn)", msg)
        self.tracker.set_tags({TAG: msg})
