"""Anti-aliasing training benchmark: what one training step costs over a bare student step, and
seconds per epoch of the default configuration (demo teacher, 16 × 1.2 s tones per batch).

- step ratio: one batch through the training scaffold (`aaexp.training.loop.Loop`'s per-item path:
  the AA task's step — sine inputs, target rebuild from the cached harmonic bins, pre-emphasis,
  ESR + NMR + DC, NaN guard, optimiser step — and the loop's bookkeeping, without the epoch's
  validation and checkpoint) over a bare step on the same batch and framing (student forward, MSE
  against a ready target, backward, Adam step). Target: ≤ 1.05 (issue 16). `batch_ratio` is
  `Trainer.train_batch` alone, so the loop's own share is the difference.
- epoch seconds: the median step × batches per epoch + one measured validation pass; the
  one-off target computation for the whole data set is reported apart (it is cached).

run() -> dict; `python scripts/bench_aa_train.py` writes bench/results/aa_train.json. Runs on CPU,
and on CUDA too when present.
"""

from __future__ import annotations

import copy
import logging
import math
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from aaexp.aa.study import load_teacher, tbptt_for
from aaexp.aa.train import data as tone_data
from aaexp.aa.train.trainer import Trainer, TrainState
from aaexp.core.config import compose
from aaexp.core.seeding import seed_everything
from aaexp.training.loop import Task

REPS = 5


class _NoTracker:
    def log_metrics(self, *a, **k):
        pass

    def set_tags(self, *a, **k):
        pass


class _OneBatch(Task):
    """The AA task's step for one fixed batch, inside the loop, minus the epoch's validation."""

    def __init__(self, trainer: Trainer, idx: torch.Tensor):
        self.trainer, self.idx = trainer, idx

    def items(self, unit, state):
        return [self.idx]

    def step(self, item, state):
        return self.trainer.step(item, state)

    def after_item(self, state):
        return self.trainer.after_item(state)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def measure(device: torch.device, reps: int = REPS) -> dict:
    seed_everything(0)
    cfg = compose([])  # the default configuration: baseline loss, 40-epoch profile, demo teacher
    teacher, _ = load_teacher(cfg.model, device)
    dtype = teacher.dtype
    layout = tone_data.ToneLayout.from_config(cfg.data, teacher.sample_rate)
    bs = int(cfg.trainer.batch_size)
    gen = torch.Generator().manual_seed(int(cfg.data.seed))
    tones = tone_data.draw_train_tones(cfg.data, bs, gen)
    tone_data.teacher_targets(teacher, *(t[:2] for t in tones), layout, dtype, device)  # warm-up
    t0 = time.perf_counter()
    train = tone_data.teacher_targets(teacher, *tones, layout, dtype, device)
    _sync(device)
    target_s_per_tone = (time.perf_counter() - t0) / bs
    val = tone_data.teacher_targets(teacher, *tone_data.val_tones(cfg.data, int(cfg.data.n_val)), layout, dtype, device)

    with tempfile.TemporaryDirectory() as tmp:
        ctx = SimpleNamespace(cfg=cfg, device=device, tracker=_NoTracker(), out_dir=Path(tmp), progress=False,
                              resumed=False, log=logging.getLogger("bench"))
        student = copy.deepcopy(teacher).train().requires_grad_(True)
        trainer = Trainer(ctx, student, train, val, cfg.loss, cfg.trainer, tbptt_for(student, cfg.model), dtype)
        framing = trainer.framing
        idx = torch.arange(bs)
        weights = dict(trainer.val_weights)

        bare_student = copy.deepcopy(teacher).train().requires_grad_(True)
        bare_opt = torch.optim.Adam(bare_student.parameters(), lr=float(cfg.trainer.lr))
        x = train.inputs(idx, dtype, device, start=framing.input_start)
        ready = framing.target_frames(train.targets(idx, dtype, device))

        def bare_step():
            for k, y in enumerate(framing.student_frames(bare_student, x)):
                bare_opt.zero_grad(set_to_none=True)
                (y - ready[k]).square().mean().backward()
                bare_opt.step()

        state = TrainState()
        trainer.items(0, state)   # the epoch's loss weights
        loop, one = trainer.loop, _OneBatch(trainer, idx)
        loop.units = loop.checkpoint_every = 10**9   # no end-of-run or periodic checkpoint inside the timing
        train_step = lambda: trainer.train_batch(idx, weights, state)  # noqa: E731
        loop_step = lambda: loop._unit(one, state, 0, None)  # noqa: E731
        bare_step(), train_step(), loop_step()  # warm caches (filters, NMR tables, allocator)
        bare, batch, full = [], [], []
        for _ in range(reps):  # interleaved, so load changes hit all alike
            bare.append(_timed(bare_step, device))
            batch.append(_timed(train_step, device))
            full.append(_timed(loop_step, device))
        val_s = _timed(trainer.validate, device)

    n_batches = math.ceil(int(cfg.data.n_train) / bs)
    step_s = statistics.median(full)
    return {
        "teacher": str(teacher.source.path), "architecture": teacher.architecture,
        "receptive_field": teacher.receptive_field, "dtype": str(dtype).replace("torch.", ""),
        "batch": bs, "tone_samples": layout.n_warmup + layout.n_window, "window_samples": layout.n_window,
        "frames_per_batch": len(framing.frames), "student_input_samples": int(x.shape[-1]),
        "bare_step_s": statistics.median(bare), "train_step_s": step_s,
        "step_ratio": step_s / statistics.median(bare), "step_ratio_of_minima": min(full) / min(bare),
        "step_ratio_target": 1.05,
        "batch_ratio": statistics.median(batch) / statistics.median(bare),
        "loop_steps_s": full, "train_batch_s": batch, "bare_steps_s": bare,
        "validation_s": val_s, "val_tones": len(val), "batches_per_epoch": n_batches,
        "epoch_s": n_batches * step_s + val_s,
        "targets_once_s": target_s_per_tone * (int(cfg.data.n_train) + int(cfg.data.n_val)),
    }


def run() -> dict:
    out = {"cpu": measure(torch.device("cpu")), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        out["cuda"] = measure(torch.device("cuda"))
        out["cuda_device"] = torch.cuda.get_device_name(0)
    else:
        out["cuda"] = None  # no GPU here: seconds per epoch on a GPU not measured
    return out


if __name__ == "__main__":
    from bench import run_alone  # scripts/ is on sys.path when this file runs as a script

    run_alone("aa_train", run)
