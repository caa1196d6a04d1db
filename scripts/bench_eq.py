"""EQ study benchmark: training throughput of the V1 / V2 autoencoders, one CPU thread vs one per
core (the reason for `trainer.cpu_threads: 1`), and CUDA when present.

run() -> dict of timings and ratios measured in the same run; `python scripts/bench_eq.py` writes
bench/results/eq.json.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from aaexp.core.config import compose
from aaexp.eq import data as eq_data
from aaexp.eq import model as eq_model
from aaexp.eq import normalise
from aaexp.eq.params import PluginRanges
from aaexp.eq.train import Tensors, train

EPOCHS = 3
SAFE_ROWS = 1283  # SAFE-DB rows kept with min_count 5: the size of a real run


class _NoTracker:
    def log_metrics(self, *a, **k):
        pass


def _epoch_seconds(exp: str, device: torch.device, threads: int | None) -> float:
    """Median seconds per training epoch over EPOCHS epochs on a SAFE-sized synthetic set."""
    cfg = compose([f"+experiment={exp}", f"data.synthetic.rows_per_descriptor={SAFE_ROWS // 4 + 1}",
                   f"trainer.max_epochs={EPOCHS}", f"trainer.checkpoint_every={EPOCHS}"])
    ranges = PluginRanges.from_cfg(cfg.data.plugin)
    d = eq_data.load(cfg.data)
    norm = normalise.build(cfg.model.norm, d.params)
    x = norm.forward(torch.as_tensor(d.params[:SAFE_ROWS])).float().to(device)
    vocab = {w: i for i, w in enumerate(d.descriptors)}
    y = torch.tensor([vocab[w] for w in d.labels[:SAFE_ROWS]], device=device)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    times = []

    class _Timer(_NoTracker):
        def log_metrics(self, m, step=None):
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter())

    try:
        torch.manual_seed(0)
        model = eq_model.build(cfg.model, ranges).to(device)
        with tempfile.TemporaryDirectory() as tmp:
            ctx = SimpleNamespace(cfg=cfg, out_dir=Path(tmp), device=device, progress=False, resumed=False,
                                  log=logging.getLogger("bench"), tracker=_Timer())
            t0 = time.perf_counter()
            train(ctx, model, Tensors(x, y, x[:0], y[:0]), cfg.loss)
    finally:
        torch.set_num_threads(before)
    return float(np.median(np.diff([t0, *times])))


def run() -> dict:
    cores = os.cpu_count() or 1
    out: dict = {"rows": SAFE_ROWS, "epochs_timed": EPOCHS, "cpu_cores": cores}
    cpu = torch.device("cpu")
    for exp in ("eq_v1", "eq_v2"):
        one = _epoch_seconds(exp, cpu, 1)
        every = _epoch_seconds(exp, cpu, cores)
        out[f"{exp}/cpu_1thread_s_per_epoch"] = one
        out[f"{exp}/cpu_all_cores_s_per_epoch"] = every
        out[f"{exp}/all_cores_over_1thread"] = every / one
        recipe_epochs = int(compose([f"+experiment={exp}"]).trainer.max_epochs)
        out[f"{exp}/cpu_1thread_full_training_s_est"] = one * recipe_epochs
        if torch.cuda.is_available():
            gpu = _epoch_seconds(exp, torch.device("cuda"), None)
            out[f"{exp}/cuda_s_per_epoch"] = gpu
            out[f"{exp}/cpu_1thread_over_cuda"] = one / gpu
    return out


if __name__ == "__main__":
    from bench import run_alone  # scripts/ is on sys.path when this file runs as a script

    run_alone("eq", run)
