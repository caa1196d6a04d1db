"""Benchmark `aaexp eval` (AA) against the bare teacher + student forward passes on the same tones.

    .venv/bin/python scripts/bench_aa_eval.py            # writes bench/results/aa_eval.json

Target (issue 4): evaluation on the default 50-tone grid <= 1.5 x the bare forward passes. The
bare passes use the same tones, warm-ups, batches, dtype and thread policy as the evaluator, so the
ratio is the evaluator's own overhead: spectra, bandlimiting, NMR-S/HESR-R, the periodicity check,
the sweep for the spectrogram, and (second ratio) writing tables and PNG plots. Loading the models
and starting MLflow are left out: they cost the same with or without the evaluation.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO / ".." / "shared" / "data" / "nam").resolve()
PAIRS = {"jhm8_tcn": ("jhm8_tcn_teacher.nam", "jhm8_tcn_student.nam"), "jhm8_lstm": ("jhm8_lstm_teacher.json", "jhm8_lstm_student.json")}


def bare_forward_seconds(models, cfg, device) -> float:
    """Time of running every model on the grid's tones (same warm-up, batches, dtype) and nothing else."""
    from aaexp.aa.eval import grid as eval_grid
    from aaexp.aa.eval import response as eval_response
    from aaexp.aa.signal import tones
    dtype = getattr(torch, str(cfg.dtype))
    grid = eval_grid.make_grid(cfg, int(models[0].sample_rate))
    t0 = time.perf_counter()
    for model in models:
        m = eval_response.prepare_model(model, device, dtype)
        n_w = eval_response.initial_warmup(cfg.warmup, grid.fs, m.receptive_field)
        for idx in eval_response.chunks(torch.arange(len(grid)), int(cfg.batch_size)):
            x = tones.sine_batch(grid.f0[idx], grid.amp[idx], grid.start_phase(n_w)[idx], grid.fs, n_w, grid.n_window,
                                 dtype=dtype, device=device)
            eval_response.forward(m, x)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def bench_pair(name: str, cfg, device) -> dict:
    from aaexp.aa.eval.evaluator import evaluate
    from aaexp.aa.models import load_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        teacher, student = (load_model(DATA / f) for f in PAIRS[name])
        # Bare passes before and after the evaluation: their mean cancels slow drifts in machine load.
        bare_before = bare_forward_seconds([teacher, student], cfg, device)
        t0 = time.perf_counter()
        result = evaluate(teacher, student, cfg, device)
        t_eval = time.perf_counter() - t0
        bare_after = bare_forward_seconds([teacher, student], cfg, device)
        bare = (bare_before + bare_after) / 2
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            result.write(tmp, plots=True)
            t_write = time.perf_counter() - t0
    unsettled = {k: len(v.unsettled) for k, v in result.models.items()}
    return {
        "tones": len(result.grid), "window_samples": result.grid.n_window,
        "warmup_s": {k: sorted({int(w) / result.grid.fs for w in v.warmup}) for k, v in result.models.items()},
        "unsettled_tones": unsettled,
        "bare_forward_s": round(bare, 3), "bare_forward_before_after_s": [round(bare_before, 3), round(bare_after, 3)],
        "evaluate_s": round(t_eval, 3), "write_tables_plots_s": round(t_write, 3),
        "ratio_evaluate": round(t_eval / bare, 3), "ratio_evaluate_and_write": round((t_eval + t_write) / bare, 3),
        "target_ratio": 1.5, "meets_target": (t_eval + t_write) / bare <= 1.5,
        "student_nmr_s_2k_8k_db": round(result.metrics["eval/nmr_s/2k-8k"], 2),
        "teacher_nmr_s_2k_8k_db": round(result.metrics["eval/teacher/nmr_s/2k-8k"], 2),
    }


def run(pairs: list[str] | None = None) -> dict:
    """Timings and ratios for each jhm8 pair on the default grid (conf/eval/aa.yaml), measured in this run."""
    from aaexp.core.config import CONF_DIR

    cfg = OmegaConf.load(CONF_DIR / "eval" / "aa.yaml")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = {"device": str(device), "torch_threads": torch.get_num_threads(), "dtype": str(cfg.dtype),
           "grid": f"{cfg.tones.n} tones {cfg.tones.f_min_hz}-{cfg.tones.f_max_hz} Hz, levels {list(cfg.tones.levels_dbfs)} dBFS, "
                   f"window {cfg.window_s} s"}
    for name in pairs or list(PAIRS):
        out[name] = bench_pair(name, cfg, device)
        print(name, json.dumps(out[name]), file=sys.stderr, flush=True)
    return out


if __name__ == "__main__":
    from bench import run_alone  # scripts/ is on sys.path when this file runs as a script

    run_alone("aa_eval", lambda: run(sys.argv[1:] or None))
