"""Harmonic loss: dB-domain MSE between the student's and the target's first K harmonics.

The anti-aliasing loss mix (ESR + NMR) lets the student trade a little harmonic accuracy for less
aliasing; this term pins the audible harmonics themselves. It reads the complex amplitude of
harmonic k at FFT bin k·m of the exactly periodic N-sample loss window (f0 = m·fs/N), so it needs
the whole window, not a truncated-BPTT frame.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aaexp.aa.loss.ratio import to_db
from aaexp.aa.signal.bandlimit import harmonic_magnitudes


def harmonic_weights(valid: Tensor) -> Tensor:
    """Weights ∝ 1/k over the valid harmonics of each item, normalised to sum 1.

    Args:
        valid: BoolTensor[B x K], harmonic k = column + 1 lies below Nyquist.
    Returns:
        Tensor[B x K] (float64), zero where not valid; rows with no valid harmonic are all zero.
    """
    k = torch.arange(1, valid.shape[-1] + 1, device=valid.device, dtype=torch.float64)
    w = valid.to(torch.float64) / k
    return w / w.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)


class HarmonicLoss(nn.Module):
    """Σ_k w_k (dB|Y_k| − dB|T_k|)² per item, w_k ∝ 1/k over harmonics k·f0 below Nyquist.

    Args:
        n_harmonics: K, how many harmonics from the fundamental up (default 10).
        floor_db: magnitudes are clamped at this level (dB re amplitude 1) before comparing, so
            harmonics that are absent in both signals cost nothing (default -120).
        reduction: "mean" (over the batch) or "none".

    Shape:
        input, target: Tensor[B x N], the exactly periodic loss window (f0 = m·fs/N, gcd(m, N) = 1).
        m: LongTensor[B], the fundamental's bin.
        output: scalar, or Tensor[B] with reduction="none" (unit: dB²).
    """

    def __init__(self, n_harmonics: int, floor_db: float, reduction: str = "mean"):
        super().__init__()
        if n_harmonics < 1:
            raise ValueError("n_harmonics must be at least 1")
        self.n_harmonics = int(n_harmonics)
        self.floor_db = float(floor_db)
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor, m: Tensor) -> Tensor:
        mag_y, valid = harmonic_magnitudes(input, m, self.n_harmonics)
        mag_t, _ = harmonic_magnitudes(target, m, self.n_harmonics)
        # 10·log10(|a|²) = 20·log10|a|, with the same floor as every other dB figure here.
        diff = to_db(mag_y.square(), self.floor_db) - to_db(mag_t.square(), self.floor_db)
        w = harmonic_weights(valid).to(diff.dtype)
        per_item = (w * diff.square()).sum(dim=-1)
        if self.reduction == "none":
            return per_item
        return per_item.mean()
