"""Exact bandlimiting of a periodic response: keep the harmonic FFT bins, drop the rest.

A window of N samples of a model's steady-state response to f0 = m·fs/N, gcd(m, N) = 1 (N prime,
or a power of two with m odd: `aaexp.aa.signal.tones`), holds the harmonics of f0 below Nyquist on bins
0, m, 2m, ... (DC counts as a harmonic: fuzz models carry offsets, and calling them aliasing would
swamp ASR) and every aliased component on some other bin. So BL(y) = irfft(rfft(y) · mask):
exact, O(N log N), batched, differentiable, on y's device. Only harmonics of order ≥ N − N/(2m)
could fold back onto a harmonic bin; for any real model their energy is far below float64
resolution. `harmonic_part` is the one place this is done: training targets, the loss terms and the
evaluation's scores all call it (a hand-written chirp-z transform for prime N was measured and
dropped: experiments/aa/chirp_decision.md).
"""

from __future__ import annotations

import torch
from torch import Tensor

from aaexp.core.errors import AaexpError


def _check(y: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
    """Broadcast 1-D input to a batch of one and validate m against the window length."""
    if y.dim() == 1:
        y = y.unsqueeze(0)
    if y.dim() != 2:
        raise AaexpError(f"bandlimit expects Tensor[B x N], got shape {tuple(y.shape)}")
    m = torch.as_tensor(m, device=y.device).reshape(-1).long()
    if m.numel() != y.shape[0]:
        raise AaexpError(f"bandlimit: {m.numel()} fundamental bins for a batch of {y.shape[0]} signals")
    n = y.shape[-1]
    if (m < 1).any() or (2 * m >= n).any():
        raise AaexpError(f"bandlimit: every m must satisfy 1 ≤ m < N/2 = {n / 2:g}")
    return y, m


def harmonic_mask(m: Tensor, n: int) -> Tensor:
    """Which rfft bins hold harmonics of f0 = m·fs/n (bin 0, DC, included).

    Shape:
        m: LongTensor[B]; output: BoolTensor[B x (n//2 + 1)] on m's device.
    """
    m = torch.as_tensor(m).reshape(-1).long()
    k = torch.arange(n // 2 + 1, device=m.device)
    return torch.remainder(k.unsqueeze(0), m.unsqueeze(-1)) == 0


def harmonic_part(spec: Tensor, m: Tensor, n: int) -> Tensor:
    """BL(y) from y's rfft: DC and the harmonic bins of f0 = m·fs/n kept, every other bin zeroed.

    Shape:
        spec: complex Tensor[B x (n//2 + 1)]; m: LongTensor[B]; output: Tensor[B x n] on spec's device.
    """
    return torch.fft.irfft(torch.where(harmonic_mask(m, n).to(spec.device), spec, 0), n=n, dim=-1)


def bandlimit(y: Tensor, m: Tensor) -> Tensor:
    """BL(y): the harmonics of f0 = m·fs/N in y (N = y's length), everything else removed.

    Differentiable (the mask is a constant), computed in y's dtype on y's device.

    Shape:
        y: Tensor[B x N] (one exactly periodic analysis window per item); m: LongTensor[B].
        output: Tensor[B x N].
    """
    y, m = _check(y, m)
    return harmonic_part(torch.fft.rfft(y, dim=-1), m, y.shape[-1])


def split_harmonics(y: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
    """(harmonic, alias) = (BL(y), y − BL(y)); harmonic + alias == y.

    Shape:
        y: Tensor[B x N]; m: LongTensor[B]; outputs: Tensor[B x N] each.
    """
    y2, _ = _check(y, m)
    harmonic = bandlimit(y2, m)
    return harmonic, y2 - harmonic


def harmonic_magnitudes(y: Tensor, m: Tensor, n_harmonics: int) -> tuple[Tensor, Tensor]:
    """Peak amplitudes |a_k| of harmonics k = 1..K, read from bin k·m (2·|Y[k·m]|/N).

    Harmonics at or above Nyquist (k·m ≥ N/2) do not exist in the window: their magnitude is 0
    and `valid` is False there.

    Shape:
        y: Tensor[B x N]; m: LongTensor[B].
        output: (mag: Tensor[B x K] real, valid: BoolTensor[B x K]).
    """
    y, m = _check(y, m)
    n = y.shape[-1]
    k = torch.arange(1, int(n_harmonics) + 1, device=y.device)
    bins = m.unsqueeze(-1) * k.unsqueeze(0)                      # B x K
    valid = 2 * bins < n              # a harmonic on the Nyquist bin (even N, m = 1 only) counts as absent
    picked = torch.gather(torch.fft.rfft(y, dim=-1), -1, torch.where(valid, bins, 0))
    mag = torch.where(valid, picked.abs() * (2.0 / n), torch.zeros((), dtype=y.dtype, device=y.device))
    return mag, valid
