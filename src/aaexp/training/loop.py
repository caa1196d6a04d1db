"""The training loop of every study: its life cycle, with the study supplying only its step.

A run is `units` units (epochs; a study with `unit="step"` runs one optimiser update per unit), each
a sequence of items (batches). The loop owns what must not differ between studies: resuming from
one checkpoint format that holds every RNG state, the checkpoint cadence (`trainer.checkpoint_every`
units), the best-so-far model (`trainer.best_metric`), the NaN and divergence guard, what Ctrl-C or
SIGTERM leave on disk, per-step (`trainer.log_every_n_steps`) and per-unit logging, the progress bar
and the wall clock (`perf/wall_s`, carried across resumes). A study implements a `Task`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import torch

from aaexp.core.errors import TrainingDiverged
from aaexp.core.files import atomic_save, plain
from aaexp.core.progress import bar
from aaexp.training import checkpoint
from aaexp.training.divergence import DivergenceWatch, last_good


@dataclass
class LoopState:
    """Loop counters and the best-so-far record; studies subclass it to add their own counters."""

    epoch: int = 0                 # units completed
    step: int = 0                  # optimiser updates taken
    wall_s: float = 0.0            # wall seconds of the run up to this state (a resume carries it on)
    history: list[dict[str, float]] = field(default_factory=list)  # per-unit metrics, {"epoch": n, ...}
    best_value: float = math.inf
    best_epoch: int = -1           # -1: nothing measured yet
    best_step: int = 0


class Task:
    """What a study supplies. `items` and `step` are required; the other hooks default to nothing."""

    def begin(self, loop: "Loop", state: LoopState, fresh: bool) -> str | None:
        """Before the first unit of this process (fresh: not resumed); a non-None reason stops at once."""
        return None

    def items(self, unit: int, state: LoopState) -> Iterable:
        """The unit's items (0-based unit)."""
        raise NotImplementedError

    def step(self, item, state: LoopState) -> dict:
        """Train on one item; returns its terms ({"loss": ..., ...}, floats or 0-d tensors). It counts its
        optimiser updates in `state.step` and hands each update's loss to `loop.check`."""
        raise NotImplementedError

    def after_item(self, state: LoopState) -> str | None:
        """After each item; a non-None reason ends training after this unit's bookkeeping."""
        return None

    def end_unit(self, unit: int, state: LoopState, means: dict[str, float], started: float) -> dict[str, float]:
        """Validation and the unit's metrics to log at step `unit + 1` ({}: nothing this unit)."""
        return {}

    def after_unit(self, state: LoopState, metrics: dict[str, float]) -> None:
        """After the unit's checkpoint and logging (pictures, a log line)."""


class Loop:
    """Runs a `Task` for `trainer.max_epochs` (unit="epoch") or `trainer.steps` (unit="step") units.

    Args:
        ctx: the run context (cfg.trainer, tracker, device, progress, log, resumed, started).
        model, optimizer, scheduler: what the checkpoint saves; generators: the loop's own RNGs.
        ckpt_path: the resumable checkpoint; best_path: where the best model goes (with trainer.best_metric).
        progress: "items" (a bar per unit over its items) or "units" (one bar over all units).
    """

    def __init__(self, ctx, model: torch.nn.Module, optimizer: torch.optim.Optimizer, ckpt_path: Path, *,
                 unit: str = "epoch", state_cls=LoopState, scheduler=None, generators: dict | None = None,
                 best_path: Path | None = None, progress: str = "items", desc: str = "train", averaged=None):
        tr = ctx.cfg.trainer
        self.ctx, self.model, self.optimizer, self.scheduler = ctx, model, optimizer, scheduler
        self.averaged = averaged   # torch AveragedModel (EMA) or None: best/at-target files take its weights
        self.exported = model if averaged is None else averaged.module
        self.unit, self.state_cls, self.generators = unit, state_cls, generators or {}
        self.units = int(tr.max_epochs if unit == "epoch" else tr.steps)
        self.ckpt_path, self.best_path = Path(ckpt_path), best_path
        self.checkpoint_every = int(tr.checkpoint_every)
        self.log_every = int(tr.log_every_n_steps or 0) if unit == "epoch" else 0   # a "step" study logs per unit itself
        self.best_metric = tr.get("best_metric") if best_path is not None else None
        self.progress, self.desc = progress, desc
        self.divergence = DivergenceWatch.from_cfg(tr, ctx, self.last_good)
        self.sync_each_step = ctx.device.type == "cpu"   # a CPU float() costs nothing; a GPU one stalls the loop
        self._pending: list = []
        self.last_means: dict[str, float] = {}   # the last unit's mean terms
        self.started = float(getattr(ctx, "started", None) or time.perf_counter())
        self.wall_offset = 0.0   # wall seconds before this process (a resumed run's earlier life)

    # -- clock and guard ---------------------------------------------------------------------------
    def wall_s(self) -> float:
        """Wall seconds since the start of `aaexp train` (plus a resumed run's earlier time)."""
        return self.wall_offset + time.perf_counter() - self.started

    def last_good(self) -> str:
        return last_good(self.ckpt_path, self.best_path)

    def check(self, total: torch.Tensor, terms: dict, epoch: int, step: int) -> None:
        """Guard one update's loss (1-based epoch and step). On the CPU at once; on a GPU the values stay on
        the device until `flush()` (every log_every_n_steps and at the end of each unit), so the hot loop
        never waits for the device."""
        if self.sync_each_step:
            self._check(float(total.detach()), terms, epoch, step)
        else:
            self._pending.append((epoch, step, total.detach(), terms))

    def _check(self, value: float, terms: dict, epoch: int, step: int) -> None:
        if not math.isfinite(value):
            where = f"epoch {epoch}, step {step}" if self.unit == "epoch" else f"step {step}"
            parts = ", ".join(f"{n}={float(v.detach() if torch.is_tensor(v) else v):.3g}" for n, v in terms.items())
            raise TrainingDiverged(f"training diverged: loss became {value} at {where} ({parts}); {self.last_good()}")
        self.divergence.check(value, epoch, step)

    def flush(self) -> None:
        """Check the losses of the updates not yet checked (GPU: one device sync for all of them)."""
        if not self._pending:
            return
        values = torch.stack([p[2] for p in self._pending]).tolist()
        pending, self._pending = self._pending, []
        for (epoch, step, _, terms), value in zip(pending, values):
            self._check(value, terms, epoch, step)

    # -- checkpoints -------------------------------------------------------------------------------
    def save_last(self, state: LoopState) -> None:
        checkpoint.save(self.ckpt_path, state, self.model, self.optimizer, self.scheduler, self.generators, self.averaged)

    def save_model(self, path: Path, state: LoopState, **extra) -> None:
        """The model's weights alone (best, at-target), with the counters they were taken at."""
        atomic_save({"model": self.exported.state_dict(), "epoch": state.epoch, "step": state.step, **plain(extra)}, path)

    def save_best(self, state: LoopState, metrics: dict[str, float], epoch: int) -> None:
        value = metrics.get(self.best_metric) if self.best_metric else None
        if value is not None and math.isfinite(value) and value < state.best_value:
            state.best_value, state.best_epoch, state.best_step = value, epoch, state.step
            atomic_save({"model": self.exported.state_dict(), "epoch": epoch, "step": state.step, self.best_metric: float(value)},
                        self.best_path)

    def record(self, state: LoopState, metrics: dict[str, float], epoch: int) -> None:
        """A unit's metrics into the history (for resume and the best pick) and the best model."""
        state.history.append({"epoch": epoch, **metrics})
        self.save_best(state, metrics, epoch)

    def resume(self) -> LoopState | None:
        """The state saved by an earlier process of this run (`resume=`), or None for a fresh start."""
        if not self.ctx.resumed:
            return None
        if not self.ckpt_path.is_file():
            self.ctx.log.warning("resume: no checkpoint %s yet; training from the start", self.ckpt_path)
            return None
        state = checkpoint.load(self.ckpt_path, self.state_cls, self.model, self.optimizer, self.scheduler, self.generators,
                                self.averaged)
        self.wall_offset = state.wall_s
        self.ctx.log.info("resumed from %s after %s %d of %d (%d updates, %.0f s)", self.ckpt_path, self.unit, state.epoch,
                          self.units, state.step, state.wall_s)
        self._relog_missing(state)
        return state

    def _relog_missing(self, state: LoopState) -> None:
        """Log units that reached the checkpoint but not MLflow (the run died in between)."""
        if not state.history:
            return
        common = set.intersection(*(set(h) for h in state.history)) - {"epoch"}
        if not common:
            return
        key = sorted(common)[0]   # a metric every unit logged, so a missing step means a missing unit
        try:
            logged = {m.step for m in self.ctx.tracker.client.get_metric_history(self.ctx.tracker.run_id, key)}
        except Exception:  # a tracker without history: log nothing twice rather than guess
            return
        for h in state.history:
            if h["epoch"] not in logged:
                self.ctx.tracker.log_metrics({k: v for k, v in h.items() if k != "epoch"}, step=h["epoch"])

    # -- the loop ----------------------------------------------------------------------------------
    def fit(self, task: Task) -> tuple[LoopState, str | None]:
        """Run the task to its last unit or a stop reason; returns the final state and the reason (None: done)."""
        state = self.resume()
        fresh = state is None
        state = state or self.state_cls()
        stopped = task.begin(self, state, fresh)
        if stopped is not None:
            return state, stopped
        units = range(state.epoch, self.units)
        over_units = self.progress == "units"
        if over_units:
            units = bar(units, enabled=self.ctx.progress, desc=self.desc, initial=state.epoch, total=self.units)
        try:
            for unit in units:
                stopped = self._unit(task, state, unit, None if over_units else f"{self.desc} {unit + 1}/{self.units}")
                if over_units and "loss" in self.last_means:
                    units.set_postfix(loss=f"{self.last_means['loss']:.4g}")
                if stopped:
                    break
        except KeyboardInterrupt:
            if self.unit == "step":   # one update per unit: the finished ones are all consistent, keep them
                self.save_last(state)
            raise
        return state, stopped

    def _unit(self, task: Task, state: LoopState, unit: int, item_bar: str | None) -> str | None:
        t0, sums, n, stopped = time.perf_counter(), {}, 0, None
        items = task.items(unit, state)
        if item_bar is not None:
            items = bar(items, enabled=self.ctx.progress, desc=item_bar)
        for item in items:
            before = state.step
            terms = task.step(item, state)
            n += 1
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + (v.detach() if torch.is_tensor(v) else v)
            if self.log_every and state.step // self.log_every > before // self.log_every:
                self.flush()
                self.ctx.tracker.log_metrics({"train/loss_step": float(terms["loss"]), "perf/wall_s": self.wall_s()},
                                             step=state.step)
            if item_bar is not None and self.sync_each_step and "loss" in terms:
                items.set_postfix(loss=f"{float(terms['loss']):.4g}")
            stopped = task.after_item(state)
            if stopped:
                break
        if stopped and n == 0:
            return stopped
        self.flush()
        means = self.last_means = {k: float(v) / n for k, v in sums.items()} if n else {}
        metrics = task.end_unit(unit, state, means, t0)
        state.epoch = unit + 1
        state.wall_s = self.wall_s()
        if metrics:
            self.record(state, metrics, state.epoch)
        if state.epoch % self.checkpoint_every == 0 or state.epoch == self.units or stopped:
            self.save_last(state)
        if metrics:
            self.ctx.tracker.log_metrics(metrics, step=state.epoch)
        task.after_unit(state, metrics)
        return stopped


def series(history: list[dict[str, float]]) -> dict[str, list[tuple[int, float]]]:
    """The loop's per-unit history as {metric: [(unit, value), ...]} (for curves)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for row in history:
        for k, v in row.items():
            if k != "epoch":
                out.setdefault(k, []).append((row["epoch"], v))
    return out
