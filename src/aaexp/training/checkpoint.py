"""Resumable checkpoints, one format for every study.

A checkpoint holds the model's weights, the optimiser and LR-schedule states, the loop's counters
and every random-number state a loop draws from (python, numpy, torch, CUDA and the loop's own
generators), so a resumed run produces the same weights as one that was never interrupted.
"""

from __future__ import annotations

import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aaexp.errors import AaexpError
from aaexp.files import atomic_save


def rng_states(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Every RNG state a training loop may touch."""
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
              "generators": {k: g.get_state() for k, g in generators.items()}}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng(states: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    for k, g in generators.items():
        g.set_state(states["generators"][k])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save(path: Path, state, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler=None,
         generators: dict[str, torch.Generator] | None = None) -> Path:
    """Write the resumable checkpoint (weights, optimiser, LR schedule, counters `state`, RNG states)."""
    return atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": None if scheduler is None else scheduler.state_dict(),
                        "state": asdict(state), "rng": rng_states(generators or {})}, path)


def load(path: Path, state_cls, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler=None,
         generators: dict[str, torch.Generator] | None = None):
    """Restore what `save` wrote into the given objects; returns the loop counters as a `state_cls`."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(blob["model"])
        optimizer.load_state_dict(blob["optimizer"])
        if scheduler is not None and blob.get("scheduler") is not None:
            scheduler.load_state_dict(blob["scheduler"])
        restore_rng(blob["rng"], generators or {})
        return state_cls(**blob["state"])
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise AaexpError(f"{path}: cannot resume from this checkpoint ({exc})") from exc
