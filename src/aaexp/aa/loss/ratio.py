"""Waveform and spectral losses of the anti-aliasing study, auraloss style.

Meanings follow the DAFx25 reference (a-carson/dafx25_antialiasing_neural, `train.py`), where the
target is always the *bandlimited* teacher output BL(y_teacher):
- esr_normal: ESR of the model's normal (raw, not bandlimited) output against the target, so it
  punishes harmonic error and aliasing alike. "normal" is the raw output, not a normalised signal.
- esr: the same formula on the bandlimited model output BL(y) (harmonic error only).
- mesr: ESR of Chebyshev-windowed (−120 dB side lobes) rfft magnitudes, BL(y) against target.
- dc: squared difference of the means over the target's mean square.
- asr: aliasing-to-signal ratio of one signal, |y − BL(y)|² / |BL(y)|² (DC counts as harmonic).

Every loss is a ratio num/den per item. reduction: "mean" (of the per-item ratios, default),
"sum", "none" (Tensor[B]) or "pooled" (Σ num / Σ den over the batch: the reference's training
loss pools ESR this way, so loud tones weigh more). Values are power ratios; use `to_db` for dB.
"""

from __future__ import annotations

import scipy.signal
import torch
from torch import Tensor, nn

from aaexp.aa.signal.bandlimit import split_harmonics
from aaexp.core.errors import AaexpError

REDUCTIONS = ("mean", "sum", "none", "pooled")


def to_db(x: Tensor, floor_db: float | None = -120.0) -> Tensor:
    """10·log10(x) for a power ratio, clamped at `floor_db` (no −inf, finite gradient); None: no clamp."""
    if floor_db is None:
        return 10.0 * torch.log10(x)
    return 10.0 * torch.log10(torch.clamp(x, min=10.0 ** (float(floor_db) / 10.0)))


def _as_batch(x: Tensor) -> Tensor:
    """Tensor[T] → Tensor[1 x T]; Tensor[B x T] unchanged."""
    if x.dim() == 1:
        return x.unsqueeze(0)
    if x.dim() != 2:
        raise AaexpError(f"losses expect Tensor[B x T], got shape {tuple(x.shape)}")
    return x


class _RatioLoss(nn.Module):
    """A loss num_b/den_b per item with the shared reductions; subclasses define `parts`."""

    def __init__(self, eps: float = 1e-8, reduction: str = "mean"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise AaexpError(f"reduction={reduction!r} is not one of {', '.join(REDUCTIONS)}")
        self.eps = float(eps)
        self.reduction = reduction

    def reduce(self, num: Tensor, den: Tensor) -> Tensor:
        if self.reduction == "pooled":
            return num.sum() / (den.sum() + self.eps)
        ratio = num / (den + self.eps)
        if self.reduction == "none":
            return ratio
        return ratio.sum() if self.reduction == "sum" else ratio.mean()

    def _pair(self, input: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        input, target = _as_batch(input), _as_batch(target)
        if input.shape != target.shape:
            raise AaexpError(f"{type(self).__name__}: input {tuple(input.shape)} and target "
                             f"{tuple(target.shape)} differ in shape")
        return input, target


class ESRLoss(_RatioLoss):
    """Error-to-signal ratio Σ(target − input)² / Σ target² per item.

    Args:
        eps: added to the denominator (default 1e-8).
        reduction: "mean" | "sum" | "none" | "pooled" (see module docstring).

    Shape:
        input, target: Tensor[B x T]; output: scalar, or Tensor[B] with reduction="none".
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        input, target = self._pair(input, target)
        return self.reduce((target - input).square().sum(-1), target.square().sum(-1))


class ESRNormalLoss(ESRLoss):
    """DAFx25 `esr_normal`: ESR of the model's raw (not bandlimited) output against the target.

    Same formula as ESRLoss; the name records what is compared: input = y_model as it comes out
    (aliasing included), target = BL(y_teacher). Minimising it removes aliasing and harmonic error.

    Shape:
        input, target: Tensor[B x T]; output: scalar, or Tensor[B] with reduction="none".
    """


class DCLoss(_RatioLoss):
    """DC error (mean(target − input))² / mean(target²) per item (auraloss DCLoss, per item).

    Shape:
        input, target: Tensor[B x T]; output: scalar, or Tensor[B] with reduction="none".
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        input, target = self._pair(input, target)
        return self.reduce((target - input).mean(-1).square(), target.square().mean(-1))


class MESRLoss(_RatioLoss):
    """Magnitude-spectrum ESR: Σ_k (|X_k| − |T_k|)² / Σ_k |T_k|², X = rfft(w·input), T = rfft(w·target).

    DAFx25 `mesr` (there: input = BL(y_model), target = BL(y_teacher)), with a Chebyshev window of
    `attenuation_db` side lobes so that leakage from strong harmonics stays below weak ones even
    for signals that are not exactly periodic in the window; window="none" uses no window.

    Args:
        window: "chebwin" (default) or "none".
        attenuation_db: Chebyshev side-lobe level in dB (default 120).
        eps, reduction: as ESRLoss.

    Shape:
        input, target: Tensor[B x T]; output: scalar, or Tensor[B] with reduction="none".
    """

    def __init__(self, window: str = "chebwin", attenuation_db: float = 120.0, eps: float = 1e-8,
                 reduction: str = "mean"):
        super().__init__(eps, reduction)
        if window not in ("chebwin", "none"):
            raise AaexpError(f"MESRLoss window={window!r} is not one of chebwin, none")
        self.window = window
        self.attenuation_db = float(attenuation_db)
        self._cache: dict[tuple, Tensor] = {}

    def _window(self, n: int, like: Tensor) -> Tensor:
        key = (n, like.dtype, like.device)
        if key not in self._cache:
            # Periodic (sym=False) Chebyshev window, as the reference uses for its 1 s windows.
            w = scipy.signal.windows.chebwin(n, at=self.attenuation_db, sym=False)
            self._cache[key] = torch.as_tensor(w, dtype=like.dtype, device=like.device)
        return self._cache[key]

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        input, target = self._pair(input, target)
        if self.window == "chebwin":
            w = self._window(input.shape[-1], input)
            input, target = input * w, target * w
        mag_x, mag_t = torch.fft.rfft(input).abs(), torch.fft.rfft(target).abs()
        return self.reduce((mag_x - mag_t).square().sum(-1), mag_t.square().sum(-1))


class ASRLoss(_RatioLoss):
    """Aliasing-to-signal ratio |y − BL(y)|² / |BL(y)|² of one exactly periodic window.

    Sato & Smith (DAFx25) read it straight from the bins; DC counts as a harmonic.

    Shape:
        input: Tensor[B x N] (f0 = m·fs/N, gcd(m, N) = 1); m: LongTensor[B];
        output: scalar, or Tensor[B] with reduction="none".
    """

    def forward(self, input: Tensor, m: Tensor) -> Tensor:
        harmonic, alias = split_harmonics(_as_batch(input), m)
        return self.reduce(alias.square().sum(-1), harmonic.square().sum(-1))


def db_to_power(x_db: Tensor) -> Tensor:
    """10^(x/10): dB back to a power ratio (the reference trains on 10^(mean NMR dB / 10))."""
    return torch.pow(10.0, x_db / 10.0)

