"""Resumable checkpoints, one format for every study.

A checkpoint holds the model's weights, the optimiser and LR-schedule states, the loop's counters
and every random-number state a loop draws from (python, numpy, torch, CUDA and the loop's own
generators), so a resumed run produces the same weights as one that was never interrupted.
Everything in it is a tensor, number, string, list, tuple or dict, so it opens with weights_only=True
(`aaexp.core.files.load_safely`): a checkpoint from someone else cannot run code when a run resumes from it.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aaexp.core.errors import AaexpError
from aaexp.core.files import atomic_save, load_safely, plain

UNSAFE_HINT = ("; start the run afresh (without resume=), or, only if you trust whoever wrote it, "
               "convert it once with `python -m aaexp.core.files --trust FILE`")


def rng_states(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Every RNG state a training loop may touch (numpy's key array as a tensor: see `plain`)."""
    states = {"python": random.getstate(), "numpy": plain(np.random.get_state()), "torch": torch.get_rng_state(),
              "generators": {k: g.get_state() for k, g in generators.items()}}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng(states: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    """Put back what `rng_states` took (an older checkpoint may hold torch's state only)."""
    if "python" in states:
        random.setstate(states["python"])
    if "numpy" in states:   # ("MT19937", key, pos, has_gauss, gauss), the key a tensor or (older files) an array
        np.random.set_state(tuple(v.numpy() if torch.is_tensor(v) else v for v in states["numpy"]))
    torch.set_rng_state(states["torch"])
    for k, g in generators.items():
        g.set_state(states["generators"][k])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save(path: Path, state, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler=None,
         generators: dict[str, torch.Generator] | None = None, averaged: torch.nn.Module | None = None) -> Path:
    """Write the resumable checkpoint (weights, optimiser, LR schedule, counters `state`, RNG states, and
    the weight average when the run keeps one)."""
    blob = {"model": model.state_dict(), "optimizer": plain(optimizer.state_dict()),
            "scheduler": None if scheduler is None else plain(scheduler.state_dict()),
            "state": plain(state), "rng": rng_states(generators or {})}
    if averaged is not None:
        blob["averaged"] = averaged.state_dict()
    return atomic_save(blob, path)


def _rows(points: dict[str, list], unit_of) -> list[dict[str, float]]:
    """A history kept as {metric: [values]} as the loop's [{"epoch": n, metric: value, ...}]."""
    rows: dict[int, dict[str, float]] = {}
    for k, values in points.items():
        for i, v in enumerate(values):
            n, value = unit_of(i, v)
            rows.setdefault(n, {"epoch": n})[k] = value
    return [rows[n] for n in sorted(rows)]


def upgrade(blob: dict) -> dict:
    """A checkpoint written before the studies shared this loop, in this format, so such runs still resume:
    the anti-aliasing study's (weights under "student", its shuffle generator beside the global RNGs), TNCA's
    (counters at the top level, torch's RNG only) and EQ's (likewise, history as lists per metric)."""
    if "state" in blob and "model" in blob:
        return blob
    if "student" in blob:                                   # anti-aliasing
        rng = dict(blob["rng"])
        rng["generators"] = {"shuffle": rng.pop("shuffle")}
        return {**blob, "model": blob["student"], "rng": rng}
    if "iteration" in blob:                                 # TNCA: history {metric: [(step, value)]}
        it = int(blob["iteration"])
        history = _rows(blob["history"], lambda i, sv: (int(sv[0]), float(sv[1])))
        return {"model": blob["model"], "optimizer": blob["optimizer"], "scheduler": None, "rng": {"torch": blob["torch_rng"]},
                "state": {"epoch": it, "step": it, "history": history, "died_at": blob.get("died_at")}}
    history = _rows(blob["history"], lambda i, v: (i + 1, float(v)))   # EQ: {metric: [value per epoch]}
    return {"model": blob["model"], "optimizer": blob["optimizer"], "scheduler": blob.get("scheduler"),
            "rng": {"torch": blob["rng"]}, "state": {"epoch": int(blob["epoch"]), "history": history}}


def load(path: Path, state_cls, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler=None,
         generators: dict[str, torch.Generator] | None = None, averaged: torch.nn.Module | None = None):
    """Restore what `save` wrote into the given objects; returns the loop counters as a `state_cls`.
    A run that keeps a weight average but resumes a checkpoint without one starts the average from the weights."""
    try:
        blob = upgrade(load_safely(path, "an aaexp checkpoint", UNSAFE_HINT))
        model.load_state_dict(blob["model"])
        if averaged is not None:
            if "averaged" in blob:
                averaged.load_state_dict(blob["averaged"])
            else:
                averaged.module.load_state_dict(blob["model"])
        optimizer.load_state_dict(blob["optimizer"])
        if scheduler is not None and blob.get("scheduler") is not None:
            scheduler.load_state_dict(blob["scheduler"])
        restore_rng(blob["rng"], generators or {})
        return state_cls(**blob["state"])
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise AaexpError(f"{path}: cannot resume from this checkpoint ({exc})") from exc
