"""TNCA benchmark: NCA training iterations per second on CPU, and where an iteration's time goes.

For each case (experiment × growth steps) one warm-up iteration, then `REPEATS` timed ones, split
into: growth forward (the NCA steps), loss forward, loss backward (measured alone on detached
outputs), NCA backward (full backward minus the loss's share) and the optimiser step.
Writes bench/results/tnca.json when run as a script.
"""

from __future__ import annotations

import os
import platform
import time

import torch

REPEATS = 3
CASES = [  # (experiment, growth steps, label)
    ("tnca_baseline", 48, "baseline, quick profile (48 steps)"),
    ("tnca_baseline", 96, "baseline, full setting (96 steps)"),
    ("tnca_bigvgan_fixes", 48, "bigvgan_fixes, quick profile"),
    ("tnca_multiscale", 48, "multiscale (160-row grid), quick profile"),
    ("tnca_audio_loss", 48, "audio_loss (Griffin-Lim + MR-STFT), quick profile"),
]


def _time_iteration(s, opt, steps: int) -> dict[str, float]:
    from aaexp.tnca import study

    t0 = time.perf_counter()
    outs = s.model.readout(s.model.grow(steps))
    t1 = time.perf_counter()
    total = study.compute_loss(s, outs)["loss/total"]
    t2 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    total.backward()
    t3 = time.perf_counter()
    opt.step()
    t4 = time.perf_counter()
    # The loss's own backward, on outputs cut from the NCA graph.
    cut = {k: v.detach().requires_grad_(True) for k, v in outs.items()}
    t5 = time.perf_counter()
    study.compute_loss(s, cut)["loss/total"].backward()
    t6 = time.perf_counter()
    loss_bwd = t6 - t5
    return {"grow_fwd_s": t1 - t0, "loss_fwd_s": t2 - t1, "loss_bwd_s": loss_bwd,
            "nca_bwd_s": max(t3 - t2 - loss_bwd, 0.0), "optim_s": t4 - t3, "iteration_s": t4 - t0}


def bench_case(experiment: str, steps: int) -> dict[str, float]:
    from aaexp.core.config import compose
    from aaexp.tnca import study

    cfg = compose([f"+experiment={experiment}", "trainer=quick", f"trainer.growth_steps={steps}"])
    torch.manual_seed(0)
    s = study.build(cfg, torch.device("cpu"))
    opt = torch.optim.Adam(s.model.parameters(), lr=float(cfg.trainer.lr))
    _time_iteration(s, opt, steps)  # warm-up
    runs = [_time_iteration(s, opt, steps) for _ in range(REPEATS)]
    mean = {k: sum(r[k] for r in runs) / len(runs) for k in runs[0]}
    it = mean["iteration_s"]
    loss_share = (mean["loss_fwd_s"] + mean["loss_bwd_s"]) / it
    nca_share = (mean["grow_fwd_s"] + mean["nca_bwd_s"]) / it
    return {**mean, "iter_per_s": 1.0 / it, "loss_share": loss_share, "nca_share": nca_share,
            "grid": f"{s.model.height}x{s.model.width}", "growth_steps": steps}


def run() -> dict:
    """Timings and shares, all measured in this run."""
    # One thread by default: on a shared 2-core machine two threads measured up to 4x slower (see thread_scaling).
    threads = int(os.environ.get("TNCA_BENCH_THREADS", 1))
    torch.set_num_threads(threads)
    results = {label: bench_case(exp, steps) for exp, steps, label in CASES}
    base = results[CASES[0][2]]["iteration_s"]
    for r in results.values():
        r["time_vs_baseline_quick"] = r["iteration_s"] / base
    # Thread scaling of the quick baseline (on a shared 2-core machine 2 threads can be slower).
    scaling = {}
    for n in sorted({1, min(2, os.cpu_count() or 1)}):
        torch.set_num_threads(n)
        scaling[f"{n}_threads_iter_per_s"] = bench_case(*CASES[0][:2])["iter_per_s"]
    torch.set_num_threads(threads)
    return {"device": "cpu", "torch_threads": threads, "cpu": platform.processor() or platform.machine(),
            "load_average_1min": os.getloadavg()[0], "repeats": REPEATS, "cases": results, "thread_scaling": scaling}


if __name__ == "__main__":
    from bench import run_alone  # scripts/ is on sys.path when this file runs as a script

    def show(res: dict) -> None:
        for label, r in res["cases"].items():
            print(f"{label:55s} {r['iter_per_s']:.3f} it/s  loss {100 * r['loss_share']:.1f}%  NCA {100 * r['nca_share']:.1f}%")
        print("thread scaling:", {k: round(v, 3) for k, v in res["thread_scaling"].items()})

    run_alone("tnca", run, show)
