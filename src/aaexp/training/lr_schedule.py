"""`trainer.lr_schedule`: how the learning rate moves over a run (torch's own schedulers).

- constant: `trainer.lr` throughout (the DAFx25 reference).
- cosine: cosine decay from lr to lr·`lr_min_ratio` over the run: over `max_time_s` of wall time when
  that is set (a time-bounded run does not know its update count in advance), else over its planned updates.
- onecycle: torch's OneCycleLR (warm-up to lr over the first 30 %, then cosine annealing).
- plateau: lr × `plateau_factor` when the epoch's `val/loss` has not improved for `plateau_patience` epochs.

Per-update schedules step after every optimiser update; plateau steps once per epoch.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from omegaconf import DictConfig

from aaexp.core.errors import AaexpError

SCHEDULES = ("constant", "cosine", "onecycle", "plateau")


def cosine_factor(progress: float, min_ratio: float) -> float:
    """lr multiplier at `progress` ∈ [0, 1] of the run: 1 → min_ratio along half a cosine."""
    p = min(max(progress, 0.0), 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p))


def make_scheduler(optimizer: torch.optim.Optimizer, trainer_cfg: DictConfig, total_updates: int,
                   time_progress: Callable[[], float] | None = None):
    """The scheduler for `trainer.lr_schedule` (None for constant).

    time_progress: the share of `max_time_s` used so far; given, cosine follows wall time instead of updates.
    """
    kind = str(trainer_cfg.get("lr_schedule") or "constant")
    lr = float(trainer_cfg.lr)
    total = max(1, int(total_updates))
    if kind == "constant":
        return None
    if kind == "cosine" and time_progress is not None:
        ratio = float(trainer_cfg.lr_min_ratio)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: cosine_factor(time_progress(), ratio))
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total,
                                                          eta_min=lr * float(trainer_cfg.lr_min_ratio))
    if kind == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total + 1)
    if kind == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=float(trainer_cfg.plateau_factor),
                                                          patience=int(trainer_cfg.plateau_patience))
    raise AaexpError(f"trainer.lr_schedule={kind!r} is not one of {', '.join(SCHEDULES)}")


def per_update(scheduler) -> bool:
    """Whether the scheduler steps after every update (else once per epoch, on val/loss)."""
    return scheduler is not None and not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
