"""The "just oversample it" baseline (`aaexp eval --oversample 2,4`): the teacher run at k·fs.

`Oversampled(teacher, k)` looks like a model at fs: it upsamples its input by k, runs the teacher
*adapted* to k·fs, low-passes and decimates back to fs. Evaluation only (no gradients).

Adapting the model (`adapt`) keeps what it computes in seconds, not in samples:

- NAM WaveNet / TCN: every dilated layer convolution keeps its K taps and gets dilation k·d, so a
  tap d samples back at fs is still the same time back at k·fs. Everything else in NAM's WaveNet
  (input rechannel, input mixer, layer 1x1, head 1x1, head rechannel, FiLM, activations, gating)
  is pointwise in time and stays as it is; any other convolution wider than one tap is refused.
- LSTM (NAM .nam and Proteus .json): the delay-line method of A. Carson, A. Wright, J. Chowdhury,
  V. Välimäki, S. Bilbao, "Sample rate independent recurrent neural networks for audio effects
  processing", DAFx24 (arXiv 2406.06293), which the DAFx25 anti-aliasing paper (Carson, Wright,
  Bilbao, arXiv 2505.11375) uses as its oversampling baseline: for an integer factor k the
  recurrence reads its state (h and c) from k samples back instead of one. Those k interleaved
  recurrences never meet, so they run as k independent sequences (sample phases r, r+k, ...)
  through the unchanged LSTM, each from the model's own initial state.
- A model with receptive_field 1 is memoryless and runs unchanged.

Resampler: scipy.signal.resample_poly (polyphase, zero-phase) with one linear-phase FIR designed
here for both directions: a Kaiser-windowed sinc at the rate k·fs, pass band up to 0.9·fs/2, stop
band from fs/2 with 120 dB attenuation (scipy.signal.kaiserord: beta 12.27, 315 taps for k=2,
627 for k=4; cutoff 0.95·fs/2). So nothing the adapted model puts above fs/2 folds back by more
than -120 dB, and harmonics in 0.9-1.0·fs/2 are attenuated as in any real oversampler.

Exactly periodic: upsampling by k, a model that is time-invariant under shifts of k samples at
k·fs, and decimating by k make a chain that is time-invariant under one-sample shifts at fs, so a
tone periodic in N samples gives an output periodic in N once the filters and the model have
settled. The evaluator's periodicity check and warm-up lengthening therefore apply unchanged; the
zero-phase filters look ahead, which `lookahead` declares.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from scipy.signal import firwin, kaiser_beta, kaiserord, resample_poly

from aaexp.core.errors import AaexpError

STOPBAND_DB = 120.0
PASS_EDGE = 0.9          # pass band up to PASS_EDGE·fs/2; the stop band starts at fs/2
MAX_FACTOR = 16


def parse_factors(text: str) -> list[int]:
    """'2,4' -> [2, 4]; anything but integers in 2..MAX_FACTOR is an AaexpError."""
    out = []
    for item in str(text).split(","):
        item = item.strip()
        try:
            k = int(item)
        except ValueError:
            raise AaexpError(f"--oversample {text!r}: {item!r} is not an integer factor (e.g. --oversample 2,4)") from None
        if not 2 <= k <= MAX_FACTOR:
            raise AaexpError(f"--oversample {text!r}: factor {k} must be an integer from 2 to {MAX_FACTOR}")
        if k not in out:
            out.append(k)
    return out


def lowpass_taps(k: int) -> np.ndarray:
    """The FIR for k× resampling (at k·fs, Nyquist = 1): Kaiser window, odd length, unit DC gain."""
    width = (1.0 - PASS_EDGE) / k
    numtaps, beta = kaiserord(STOPBAND_DB, width)
    numtaps += 1 - numtaps % 2      # odd: resample_poly's delay compensation is then exact
    return firwin(numtaps, (1.0 + PASS_EDGE) / 2 / k, window=("kaiser", beta))


def filter_design(k: int) -> dict:
    """What the JSON reports about the resampling filter."""
    taps = lowpass_taps(k)
    return {"resampler": "scipy.signal.resample_poly", "window": "kaiser",
            "beta": round(float(kaiser_beta(STOPBAND_DB)), 4), "taps": int(taps.size),
            "pass_edge_re_nyquist": PASS_EDGE, "stop_edge_re_nyquist": 1.0, "stopband_db": STOPBAND_DB}


def _wavenet_at(model: torch.nn.Module, k: int) -> torch.nn.Module:
    """A copy of a NAM WaveNet AmpModel running at k·fs: layer dilations ×k, pointwise parts as they are."""
    from nam.models.wavenet._layer_array import _Layer

    adapted = copy.deepcopy(model)
    net = adapted.core.nam
    r_before = int(adapted.core.receptive_field)
    layer_convs = {id(m.conv) for m in net.modules() if isinstance(m, _Layer)}
    for module in net.modules():
        if not isinstance(module, torch.nn.Conv1d):
            continue
        if tuple(module.stride) != (1,) or tuple(module.padding) != (0,):
            raise AaexpError(f"cannot oversample this WaveNet: a convolution has stride {module.stride} / padding {module.padding}")
        if id(module) in layer_convs:
            module.dilation = (module.dilation[0] * k,)
        elif module.kernel_size[0] != 1:
            raise AaexpError(f"cannot oversample this WaveNet: a {type(module).__name__} of kernel size {module.kernel_size[0]} "
                             "outside the dilated layers has no dilation to scale")
    r_after = int(adapted.core.receptive_field)
    if r_after != 1 + k * (r_before - 1):   # every tap now spans the same time: a check on the walk above
        raise AaexpError(f"cannot oversample this WaveNet: receptive field {r_before} became {r_after}, not {1 + k * (r_before - 1)}")
    adapted.receptive_field = r_after
    adapted.sample_rate = float(model.sample_rate) * k
    return adapted


class DelayLineLSTM(torch.nn.Module):
    """An LSTM AmpModel at k·fs whose recurrence reads its state k samples back (Carson et al., DAFx24).

    Run as k interleaved sequences through the unchanged model: Tensor[B x T] -> Tensor[B x T].
    """

    architecture = "LSTM"

    def __init__(self, model: torch.nn.Module, k: int):
        super().__init__()
        self.model, self.k = copy.deepcopy(model), int(k)
        self.sample_rate = float(model.sample_rate) * k
        self.receptive_field = int(getattr(model, "receptive_field", 0) or 0) * k   # the suggested warm-up, same seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape
        k = self.k
        pad = -t % k                     # causal: zeros after the end change nothing before it
        xx = torch.nn.functional.pad(x, (0, pad))
        phases = xx.reshape(b, -1, k).transpose(1, 2).reshape(b * k, -1)    # row b·k + r holds x[r::k]
        y = self.model(phases)
        return y.reshape(b, k, -1).transpose(1, 2).reshape(b, -1)[:, :t]


def adapt(model: torch.nn.Module, k: int) -> torch.nn.Module:
    """`model` made to run at k·fs (see the module docstring); AaexpError when there is no known way."""
    arch = getattr(model, "architecture", None)
    core = getattr(model, "core", None)
    if arch == "LSTM":
        from aaexp.aa.models.lstm_io import NamLSTMCore
        from aaexp.aa.models.proteus_io import SimpleRNNCore

        if isinstance(core, (NamLSTMCore, SimpleRNNCore)):
            return DelayLineLSTM(model, k)
    elif arch == "WaveNet" and core is not None:
        from aaexp.aa.models.wavenet_io import NamWaveNetCore

        if isinstance(core, NamWaveNetCore):
            return _wavenet_at(model, k)
    elif int(getattr(model, "receptive_field", 0) or 0) == 1 and core is None:
        adapted = copy.deepcopy(model)     # memoryless: the same function of the current sample at any rate
        adapted.sample_rate = float(model.sample_rate) * k
        return adapted
    raise AaexpError(f"cannot oversample a {arch or type(model).__name__} model: only NAM WaveNets, NAM/Proteus LSTMs "
                     "and memoryless models have a known adaptation to k·fs")


class Oversampled(torch.nn.Module):
    """`model` run at k·fs between a k× polyphase upsampler and decimator; looks like a model at fs.

    Tensor[B x T] -> Tensor[B x T]. Resampling runs in float64 (numpy), the model in its own dtype.
    """

    def __init__(self, model: torch.nn.Module, k: int):
        super().__init__()
        self.k = int(k)
        self.inner = adapt(model, self.k)
        self.sample_rate = float(model.sample_rate)
        self.architecture = getattr(model, "architecture", None)
        self.taps = lowpass_taps(self.k)
        self.exactly_periodic = True          # see the module docstring
        span = math.ceil((self.taps.size // 2) / self.k) + 1   # one filter's reach at fs, each side
        # past: both filters and the model; future: both zero-phase filters (the evaluator feeds this many extra samples)
        self.receptive_field = int(getattr(model, "receptive_field", 0) or 0) + 2 * span
        self.lookahead = 2 * span

    def _resample(self, x: np.ndarray, up: int, down: int) -> np.ndarray:
        return resample_poly(x, up, down, axis=-1, window=self.taps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeeze = x.ndim == 1
        x2 = x[None] if squeeze else x
        up = self._resample(x2.detach().to("cpu", torch.float64).numpy(), self.k, 1)
        dtype = next(self.inner.parameters(), x).dtype
        u = torch.from_numpy(up).to(device=x.device, dtype=dtype)
        # k times the samples: run ceil(B/k) rows at a time so memory stays that of the plain model
        rows = max(1, math.ceil(u.shape[0] / self.k))
        with torch.no_grad():
            y = torch.cat([self.inner(u[i:i + rows]) for i in range(0, u.shape[0], rows)])
        down = self._resample(y.to("cpu", torch.float64).numpy(), 1, self.k)[..., : x2.shape[-1]]
        out = torch.from_numpy(np.ascontiguousarray(down)).to(device=x.device, dtype=x.dtype)
        return out[0] if squeeze else out
