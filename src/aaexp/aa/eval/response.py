"""Steady-state responses of a model to the grid's tones, with the periodicity check.

The exact harmonic/alias split assumes the output is periodic over the N-sample window. A TCN
settles once the warm-up exceeds its receptive field; an LSTM may take seconds. So each tone's
output is checked: the last `check_s` of the window must equal the same samples one window (N)
earlier, i.e. the end of the warm-up. Tones that fail are re-run with the warm-up doubled (up to
`max_s`); any still failing are reported, never silently scored.
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass, field

import torch

from aaexp.aa.eval.grid import ToneGrid
from aaexp.aa.signal import tones
from aaexp.core.progress import bar


@dataclass
class Response:
    """One model's windows: `y` Tensor[B x N], the warm-up used per tone and the periodicity check."""

    y: torch.Tensor
    warmup: torch.Tensor          # LongTensor[B], samples
    mismatch_db: torch.Tensor     # Tensor[B]: power of (end of window - end of warm-up) re output power
    unsettled: list[int] = field(default_factory=list)   # tones still failing the check


def prepare_model(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """A copy of `model` on `device` in `dtype`, in eval mode (the caller's model is left untouched)."""
    return copy.deepcopy(model).to(device=device, dtype=dtype).eval()


def forward(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """model(x) without gradients. On CPU an LSTM runs on one thread: it steps through time one
    sample at a time, so extra intra-op threads only add synchronisation (measured 20x slower on
    a busy 2-core machine)."""
    limit = x.device.type == "cpu" and getattr(model, "architecture", None) == "LSTM"
    threads = torch.get_num_threads()
    with torch.no_grad(), contextlib.ExitStack() as stack:
        if limit and threads > 1:
            torch.set_num_threads(1)
            stack.callback(torch.set_num_threads, threads)
        return model(x)


def initial_warmup(cfg_warmup, fs: int, receptive_field: int) -> int:
    """Warm-up samples: max(min_s·fs, factor·receptive field, the check length)."""
    n = max(round(float(cfg_warmup.min_s) * fs), math.ceil(float(cfg_warmup.receptive_field_factor) * int(receptive_field or 0)))
    return max(n, check_length(cfg_warmup, fs))


def check_length(cfg_warmup, fs: int) -> int:
    return max(1, round(float(cfg_warmup.check_s) * fs))


def chunks(idx: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Split tone indices into near-equal batches of at most batch_size."""
    n = idx.numel()
    k = max(1, math.ceil(n / max(1, int(batch_size))))
    return [c for c in torch.tensor_split(idx, k) if c.numel()]


def run_tones(model, grid: ToneGrid, idx: torch.Tensor, n_warmup: int, check: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Drive `model` with tones `idx` after `n_warmup` samples; returns (windows Tensor[b x N], mismatch_db Tensor[b]).

    A model may ask for `lookahead` extra input samples after the window (a resampling wrapper's
    filter delay); they are generated and dropped.
    """
    n = grid.n_window
    tail = int(getattr(model, "lookahead", 0))
    x = tones.sine_batch(grid.f0[idx], grid.amp[idx], grid.start_phase(n_warmup)[idx], grid.fs,
                         n_warmup, n + tail, dtype=dtype, device=device)
    y = forward(model, x)
    win = y[:, n_warmup:n_warmup + n]
    early = y[:, n_warmup - check:n_warmup]
    late = win[:, n - check:]
    diff = (late - early).pow(2).mean(dim=1)
    power = win.pow(2).mean(dim=1)
    tiny = torch.finfo(y.dtype).tiny
    mismatch = 10.0 * torch.log10((diff + tiny) / (power + tiny))
    return win, mismatch


def steady_response(model, grid: ToneGrid, cfg_warmup, batch_size: int, device, dtype,
                    progress: bool = False, desc: str = "tones") -> Response:
    """Windows of a *prepared* model (see prepare_model) for every tone, warm-up lengthened where needed."""
    fs, n = grid.fs, grid.n_window
    check = check_length(cfg_warmup, fs)
    tol = float(cfg_warmup.tolerance_db)
    n_w = initial_warmup(cfg_warmup, fs, getattr(model, "receptive_field", 0))
    # A model run at another rate (eval_resample) is never exactly periodic here: no lengthening.
    periodic = getattr(model, "exactly_periodic", True)
    n_max = max(round(float(cfg_warmup.max_s) * fs), check) if periodic else n_w
    y = torch.empty(len(grid), n, dtype=dtype, device=device)
    warm = torch.full((len(grid),), n_w, dtype=torch.long)
    mismatch = torch.empty(len(grid), dtype=torch.float64)
    todo = torch.arange(len(grid))
    while True:
        for idx in bar(chunks(todo, batch_size), enabled=progress, desc=f"{desc} (warm-up {n_w / fs:.2g} s)"):
            win, mm = run_tones(model, grid, idx, n_w, check, device, dtype)
            y[idx.to(y.device)] = win
            mismatch[idx] = mm.to("cpu", torch.float64)
            warm[idx] = n_w
        todo = todo[mismatch[todo] > tol]
        if todo.numel() == 0 or n_w >= n_max:
            break
        n_w = min(2 * n_w, n_max)
    return Response(y=y, warmup=warm, mismatch_db=mismatch, unsettled=todo.tolist() if periodic else [])
