"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint holds the student's weights, the optimiser state, the epoch count, the best
validation score so far and every random-number state the loop draws from, so a resumed run
produces the same weights as one that was never interrupted. Files are written atomically (temp
file + rename), so a run killed mid-write keeps its previous good checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aaexp.errors import AaexpError

LAST = "last.pt"
BEST = "best.pt"


@dataclass
class TrainState:
    """Loop counters and the best-so-far record (a plain dataclass so it pickles into the checkpoint)."""

    epoch: int = 0                 # epochs completed
    step: int = 0                  # optimiser steps taken
    best_value: float = float("inf")
    best_epoch: int = -1           # -1: the untrained student (epoch-0 validation) is the best so far
    history: list[dict[str, float]] = field(default_factory=list)  # per-epoch metrics
    wall_s: float = 0.0            # wall seconds of the run up to this state (resume carries it on)
    tones_seen: int = 0            # training tones through the student (counted once per batch)
    best_step: int = 0             # optimiser updates when the best student was taken
    target_step: int | None = None        # updates at the first evaluation that met the target
    target_wall_s: float | None = None    # time to target
    target_tones: int | None = None


def rng_states(shuffle: torch.Generator) -> dict[str, Any]:
    """Every RNG state the training loop may touch."""
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
              "shuffle": shuffle.get_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng(states: dict[str, Any], shuffle: torch.Generator) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    shuffle.set_state(states["shuffle"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def atomic_save(obj: Any, path: Path) -> Path:
    """torch.save to a temp file in the same folder, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path


def save(path: Path, student: torch.nn.Module, optimizer: torch.optim.Optimizer, state: TrainState,
         shuffle: torch.Generator, scheduler=None) -> Path:
    """Write the resumable checkpoint (weights, optimiser, LR schedule, counters, RNG states)."""
    return atomic_save({"student": student.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": None if scheduler is None else scheduler.state_dict(),
                        "state": asdict(state), "rng": rng_states(shuffle)}, path)


def load(path: Path, student: torch.nn.Module, optimizer: torch.optim.Optimizer,
         shuffle: torch.Generator, scheduler=None) -> TrainState:
    """Restore what `save` wrote into the given objects; returns the loop counters."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
        student.load_state_dict(blob["student"])
        optimizer.load_state_dict(blob["optimizer"])
        if scheduler is not None and blob.get("scheduler") is not None:
            scheduler.load_state_dict(blob["scheduler"])
        restore_rng(blob["rng"], shuffle)
        return TrainState(**blob["state"])
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        raise AaexpError(f"{path}: cannot resume from this checkpoint ({exc})") from exc
