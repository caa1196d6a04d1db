"""`trainer.lr_schedule`: how the learning rate moves over a run (torch's own schedulers).

- constant: `trainer.lr` throughout (the DAFx25 reference).
- cosine: cosine decay from lr to lr·`lr_min_ratio` over the run's planned updates.
- onecycle: torch's OneCycleLR (warm-up to lr over the first 30 %, then cosine annealing).
- plateau: lr × `plateau_factor` when the epoch's `val/loss` has not improved for `plateau_patience` epochs.

Per-update schedules step after every optimiser update; plateau steps once per epoch.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from aaexp.errors import AaexpError

SCHEDULES = ("constant", "cosine", "onecycle", "plateau")


def make_scheduler(optimizer: torch.optim.Optimizer, trainer_cfg: DictConfig, total_updates: int):
    """The scheduler for `trainer.lr_schedule` (None for constant)."""
    kind = str(trainer_cfg.get("lr_schedule") or "constant")
    lr = float(trainer_cfg.lr)
    total = max(1, int(total_updates))
    if kind == "constant":
        return None
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
