"""Run a model at its own sample rate inside a signal at another rate (`aaexp eval --resample`).

Explicit and visible on purpose: the input is resampled to the model's rate with
scipy.signal.resample_poly (Kaiser-windowed polyphase FIR, zero-phase), the model runs, and its
output is resampled back. The resampler's low-pass removes whatever the model puts between the two
Nyquist frequencies, so HESR-R then measures the model *and* the resampler. And the aliases the
model makes at its own rate are not on the evaluation window's bins: they are not periodic in the
window, so they leak into neighbouring bins (still counted as non-harmonic, except the little that
lands on harmonic bins). The evaluator therefore does not lengthen the warm-up for such a model.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch
from scipy.signal import resample_poly


class Resampled(torch.nn.Module):
    """Wraps `model` (at model.sample_rate) to look like a model at `fs`. Tensor[B x T] -> Tensor[B x T]."""

    def __init__(self, model: torch.nn.Module, fs: float):
        super().__init__()
        self.model = model
        self.sample_rate = float(fs)
        self.source_rate = float(model.sample_rate)
        ratio = Fraction(round(self.source_rate), round(self.sample_rate))
        self.up, self.down = ratio.numerator, ratio.denominator
        self.architecture = getattr(model, "architecture", None)
        self.exactly_periodic = False   # see the module docstring
        scale = self.sample_rate / self.source_rate
        self.receptive_field = math.ceil(int(getattr(model, "receptive_field", 0) or 0) * scale)
        # resample_poly's filter spans about 10·max(up, down) samples at the up-sampled rate on each
        # side; two passes, with margin. The evaluator generates this many extra input samples.
        self.lookahead = 4 * math.ceil(10 * max(self.up, self.down) / min(self.up, self.down)) + 16

    def _resample(self, x: torch.Tensor, up: int, down: int) -> torch.Tensor:
        y = resample_poly(x.detach().to("cpu", torch.float64).numpy(), up, down, axis=-1)
        return torch.from_numpy(np.ascontiguousarray(y)).to(device=x.device, dtype=x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(self._resample(x, self.up, self.down))
        return self._resample(y, self.down, self.up)[..., : x.shape[-1]]
