"""Numeric settings checked before a run does any work (no targets, no MLflow run, no folder claimed).

A bad value found late costs the work done before it (a batch size of 0 used to compute every
target and run epoch 0 before `range()` refused it); here it is one line naming the key, exit 2.
Keys are checked where present, so one table serves every study.
"""

from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig

from aaexp.core.errors import AaexpError

# key: (kind, lower bound, bound inclusive?, null allowed?)
#   kind "int": a whole number; "float": any real number. Bools are never numbers here.
RULES: dict[str, tuple[str, float, bool, bool]] = {
    # every study
    "trainer.lr": ("float", 0.0, False, False),
    "trainer.cpu_threads": ("int", 1, True, True),
    "trainer.checkpoint_every": ("int", 1, True, False),
    # anti-aliasing
    "trainer.max_epochs": ("int", 1, True, False),
    "trainer.train_tones": ("int", 1, True, False),
    "trainer.val_tones": ("int", 1, True, False),
    "trainer.tone_seconds": ("float", 0.0, False, False),
    "trainer.window_seconds": ("float", 0.0, False, False),
    "trainer.batch_size": ("int", 1, True, False),
    "trainer.val_batch_size": ("int", 1, True, False),
    "trainer.log_every_n_steps": ("int", 0, True, True),
    "trainer.lr_min_ratio": ("float", 0.0, True, False),
    "trainer.plateau_factor": ("float", 0.0, False, True),    # null: no plateau schedule
    "trainer.plateau_patience": ("int", 0, True, True),
    "trainer.max_time_s": ("float", 0.0, True, True),      # 0 or null: no limit
    "trainer.eval_every_s": ("float", 0.0, False, True),
    "trainer.eval_every_n": ("int", 1, True, True),
    "trainer.audio_check_s": ("float", 0.0, False, True),   # null: eval.audio_check.seconds
    "eval.audio_check.seconds": ("float", 0.0, False, False),
    "trainer.divergence_factor": ("float", 1.0, False, True),
    "trainer.divergence_baseline_steps": ("int", 1, True, False),
    # TNCA
    "trainer.steps": ("int", 1, True, False),
    "trainer.growth_steps": ("int", 1, True, False),
    "trainer.grad_clip": ("float", 0.0, False, True),
    "trainer.image_every": ("int", 1, True, False),
    "trainer.gif_frames": ("int", 1, True, False),
}


# Stricter bounds for one study's use of a shared key.
STUDY_RULES: dict[str, dict[str, tuple[str, float, bool, bool]]] = {
    "eq": {"trainer.batch_size": ("int", 2, True, False)},   # the contrastive term needs pairs
}

CHOICES: dict[str, tuple[str, ...]] = {"trainer.on_divergence": ("warn", "stop")}
# EQ steps its schedule once per epoch on held-out reconstruction: the per-update schedules are AA's only.
STUDY_CHOICES: dict[str, dict[str, tuple[str, ...]]] = {"eq": {"trainer.lr_schedule": ("constant", "plateau")}}


def _get(cfg: DictConfig, key: str) -> tuple[bool, Any]:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _problem(value: Any, kind: str, low: float, inclusive: bool, nullable: bool) -> str | None:
    if value is None:
        return None if nullable else "must be set (null is not allowed here)"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number, got {value!r}"
    if kind == "int" and not (isinstance(value, int) or float(value).is_integer()):
        return f"must be a whole number, got {value!r}"
    if not math.isfinite(value):
        return f"must be finite, got {value!r}"
    if value < low or (value == low and not inclusive):
        what = {(0, True): ">= 0", (0, False): "> 0", (1, True): ">= 1"}.get((low, inclusive), f"{'>=' if inclusive else '>'} {low:g}")
        return f"must be {what}, got {value!r}"
    return None


def check_numbers(cfg: DictConfig) -> None:
    """Raise AaexpError (exit 2) naming the first numeric setting out of its range (or bad choice)."""
    name = str(cfg.study.name) if "study" in cfg else ""
    for key, (kind, low, inclusive, nullable) in {**RULES, **STUDY_RULES.get(name, {})}.items():
        present, value = _get(cfg, key)
        if not present:
            continue
        msg = _problem(value, kind, low, inclusive, nullable)
        if msg:
            raise AaexpError(f"{key}={value}: {msg}")
    for key, allowed in {**CHOICES, **STUDY_CHOICES.get(name, {})}.items():
        present, value = _get(cfg, key)
        if present and value not in allowed:
            raise AaexpError(f"{key}={value}: must be one of {', '.join(allowed)}")
