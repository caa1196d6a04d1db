"""Fast-recipe benchmark: optimiser updates and samples per second of `recipe=fast` against the default
recipe, on the same teacher, in one run (so the ratios survive the host's speed swings).

For each recipe: the real `Trainer.train_batch` on one batch of its own tones (targets, pre-emphasis,
loss terms, backward, Adam), timed interleaved over REPS repeats. Reported per recipe:
- updates_per_s: optimiser updates per second (frames per batch / step time);
- tones_per_s and window_samples_per_s: training tones, and loss-window samples, through the student per second;
- student_samples_per_s: input samples the student computes (loss window + receptive-field context);
and the fast/default ratios of each. The teacher is the jhm8 TCN (../shared/data/nam) when present, else
the packaged demo teacher. `AAEXP_BENCH_TEACHER=path` picks another.

run() -> dict; `python scripts/bench_aa_fast.py` writes bench/results/aa_fast.json.
"""

from __future__ import annotations

import copy
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from aaexp.aa.study import load_teacher, tbptt_for
from aaexp.aa.train import data as tone_data
from aaexp.aa.train.trainer import Trainer
from aaexp.core.config import compose
from aaexp.core.seeding import seed_everything

REPS = 5
TCN = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "nam" / "jhm8_tcn_teacher.nam"
RECIPES = {"default": [], "fast": ["recipe=fast"]}


class _NoTracker:
    def log_metrics(self, *a, **k):
        pass

    def set_tags(self, *a, **k):
        pass


def _teacher_path() -> str | None:
    path = os.environ.get("AAEXP_BENCH_TEACHER") or (str(TCN.resolve()) if TCN.is_file() else None)
    return path


def _trainer(overrides: list[str], device: torch.device, tmp: str):
    teacher_path = _teacher_path()
    cfg = compose([*overrides, *([f"model.teacher.path={teacher_path}"] if teacher_path else [])])
    teacher, _ = load_teacher(cfg.model, device, str(cfg.data.target_dtype))
    dtype = tone_data.DTYPES[str(cfg.model.dtype)]
    layout = tone_data.ToneLayout.from_config(cfg.data, teacher.sample_rate)
    bs = int(cfg.trainer.batch_size)
    gen = torch.Generator().manual_seed(int(cfg.data.seed))
    tones = tone_data.draw_train_tones(cfg.data, bs, gen)
    train = tone_data.teacher_targets(teacher, *tones, layout, teacher.dtype, device)
    ctx = SimpleNamespace(cfg=cfg, device=device, tracker=_NoTracker(), out_dir=Path(tmp), progress=False,
                          resumed=False, log=logging.getLogger("bench"))
    student = copy.deepcopy(teacher).to(dtype).train().requires_grad_(True)
    trainer = Trainer(ctx, student, train, train, cfg.loss, cfg.trainer, tbptt_for(student, cfg.model), dtype)
    info = {"teacher": str(teacher.source.path), "architecture": teacher.architecture, "dtype": str(cfg.model.dtype),
            "batch": bs, "window_samples": layout.n_window, "frames_per_batch": len(trainer.framing.frames),
            "student_input_samples": layout.n_warmup + layout.n_window - trainer.framing.input_start,
            "lr": float(cfg.trainer.lr), "lr_schedule": str(cfg.trainer.lr_schedule),
            "nmr_form": str(cfg.loss.nmr_form), "esr_form": str(cfg.loss.esr_form)}
    state = SimpleNamespace(epoch=0, step=0)
    idx = torch.arange(bs)
    weights = dict(trainer.val_weights)
    return trainer, info, (lambda: trainer.train_batch(idx, weights, state))


def _timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def measure(device: torch.device, reps: int = REPS) -> dict:
    seed_everything(0)
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        built = {name: _trainer(ov, device, tmp) for name, ov in RECIPES.items()}
        for _, _, step in built.values():
            step()  # warm caches (filters, NMR tables, allocator)
        times: dict[str, list[float]] = {name: [] for name in built}
        for _ in range(reps):  # interleaved, so load changes hit both alike
            for name, (_, _, step) in built.items():
                times[name].append(_timed(step, device))
        for name, (_, info, _) in built.items():
            s = statistics.median(times[name])
            frames, bs = info["frames_per_batch"], info["batch"]
            out[name] = {**info, "step_s": s, "steps_s": times[name], "updates_per_s": frames / s,
                         "tones_per_s": bs / s, "window_samples_per_s": bs * info["window_samples"] / s,
                         "student_samples_per_s": bs * info["student_input_samples"] / s}
    f, d = out["fast"], out["default"]
    out["ratios_fast_over_default"] = {k: f[k] / d[k] for k in ("updates_per_s", "tones_per_s", "window_samples_per_s",
                                                                "student_samples_per_s")}
    return out


def run() -> dict:
    out = {"cpu": measure(torch.device("cpu")), "torch_threads": torch.get_num_threads()}
    out["cuda"] = measure(torch.device("cuda")) if torch.cuda.is_available() else None
    return out


if __name__ == "__main__":
    from bench import run_alone  # scripts/ is on sys.path when this file runs as a script

    run_alone("aa_fast", run)
