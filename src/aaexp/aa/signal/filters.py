"""Pre-emphasis filters applied to both signals before a loss: lp, aw, hp, fd (or none).

All are FIR filters designed with scipy and applied *causally* with zero initial state, exactly
`scipy.signal.lfilter(taps, 1, x)` along time (to float round-off), so a caller can prepend
`history` samples of context and drop them afterwards (no start-up transient in the loss). Their
parameters have no defaults here: they come from the config (`loss.pre_emphasis` in conf/loss/aa.yaml). The linear-phase designs
(lp, aw) delay the signal by `delay` = (len(taps) − 1)/2 samples; the loss compares two signals
filtered alike, so the delay cancels.

- lp: Kaiser-window low-pass (DAFx25 reference: pass band 12 kHz, stop band 16 kHz, 80 dB; the
  length comes from Kaiser's estimate, as in the reference, and reaches 79–80 dB), so the loss
  ignores the top octave where neither model is heard and the teacher's harmonics are least
  trustworthy.
- aw: least-squares FIR fit of the IEC 61672 A-weighting curve (0 dB at 1 kHz), as in auraloss.
- hp: 1 − c·z⁻¹; fd: 1 − c·z⁻² (Wright & Välimäki 2019, c = 0.85, tuned for 44.1 kHz).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft
import scipy.signal
import torch
from torch import Tensor, nn

from aaexp.core.errors import AaexpError

# IEC 61672-1 A-weighting pole frequencies in Hz (f1, f2, f3, f4).
A_WEIGHTING_POLES_HZ = (20.598997, 107.65265, 737.86223, 12194.217)

# Every kind's parameters, all required (their values live in the config only).
PARAMS: dict[str, tuple[str, ...]] = {
    "none": (),
    "lp": ("passband_hz", "stopband_hz", "attenuation_db"),
    "aw": ("ntaps", "n_fit"),
    "hp": ("coef",),
    "fd": ("coef",),
}


class FIRPrefilter(nn.Module):
    """Causal FIR filter along time: y[n] = Σ_i taps[i]·x[n − i], x[n < 0] = 0.

    Args:
        taps: impulse response (float64 numpy array).
        kind: name of the design, for messages and repr.

    Attributes:
        history: len(taps) − 1, samples of past input that one output sample depends on.
        delay: group delay in samples for the linear-phase designs, (len(taps) − 1)/2.

    Shape:
        input: Tensor[B x T] or Tensor[T]; output: same shape, same dtype and device.
    """

    def __init__(self, taps: np.ndarray, kind: str):
        super().__init__()
        self.kind = kind
        taps = np.asarray(taps, dtype=np.float64).reshape(-1)
        self.register_buffer("taps", torch.from_numpy(taps.copy()))
        self.history = len(taps) - 1
        self.delay = self.history / 2
        self.identity = self.history == 0 and taps[0] == 1.0

    def forward(self, x: Tensor) -> Tensor:
        squeeze = x.dim() == 1
        x2 = x.reshape(1, -1) if squeeze else x
        if x2.dim() != 2:
            raise AaexpError(f"{self.kind} pre-emphasis expects Tensor[B x T], got shape {tuple(x.shape)}")
        if self.identity:
            return x
        # An FFT convolution of a fast length: on 16 × 1 s in float64 it is ~25× faster than
        # conv1d, which would cost more than the rest of the training loss.
        t = x2.shape[-1]
        n = scipy.fft.next_fast_len(t + self.history, real=True)
        spec = torch.fft.rfft(x2, n=n, dim=-1) * torch.fft.rfft(self.taps.to(x2), n=n)
        y = torch.fft.irfft(spec, n=n, dim=-1)[:, :t]
        return y.reshape(-1) if squeeze else y

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, ntaps={self.history + 1}"


def lowpass_taps(fs: float, passband_hz: float, stopband_hz: float, attenuation_db: float) -> np.ndarray:
    """Kaiser-window low-pass FIR: length and β from scipy's kaiserord, cut-off mid transition."""
    nyq = fs / 2.0
    if not 0 < passband_hz < stopband_hz <= nyq:
        raise AaexpError(f"lp pre-emphasis needs 0 < passband_hz < stopband_hz ≤ fs/2 = {nyq:g} Hz "
                         f"(got {passband_hz:g} and {stopband_hz:g})")
    if attenuation_db <= 0:
        raise AaexpError(f"lp pre-emphasis: attenuation_db must be > 0, got {attenuation_db:g}")
    numtaps, beta = scipy.signal.kaiserord(attenuation_db, (stopband_hz - passband_hz) / nyq)
    numtaps += 1 - numtaps % 2                    # odd length: type-I linear phase, integer delay
    cutoff = 0.5 * (passband_hz + stopband_hz)
    return scipy.signal.firwin(numtaps, cutoff, window=("kaiser", beta), fs=fs)


def a_weighting_zpk(fs: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Digital (bilinear) A-weighting filter as (zeros, poles, gain), normalised to 0 dB at 1 kHz."""
    f1, f2, f3, f4 = A_WEIGHTING_POLES_HZ
    z = np.zeros(4)
    p = -2 * np.pi * np.array([f1, f1, f4, f4, f2, f3])
    s = 2j * np.pi * 1000.0
    k = 1.0 / abs(np.prod(s - z) / np.prod(s - p))
    return scipy.signal.bilinear_zpk(z, p, k, fs)


def a_weighting_taps(fs: float, ntaps: int, n_fit: int) -> np.ndarray:
    """Least-squares linear-phase FIR fit of the A-weighting magnitude on an n_fit-point grid."""
    ntaps = int(ntaps)
    if ntaps < 3 or ntaps % 2 == 0:
        raise AaexpError(f"aw pre-emphasis: ntaps must be odd and ≥ 3, got {ntaps}")
    z, p, k = a_weighting_zpk(fs)
    f, h = scipy.signal.freqz_zpk(z, p, k, worN=int(n_fit) - int(n_fit) % 2, fs=fs)
    # Consecutive grid points pair up into bands with a linear target between them.
    return scipy.signal.firls(ntaps, f, np.abs(h), fs=fs)


def make_prefilter(kind: str, fs: float, **params) -> nn.Module:
    """The pre-emphasis filter `kind` ∈ {none, lp, aw, hp, fd} for sample rate fs.

    Params (`PARAMS`, every one required): lp: passband_hz, stopband_hz, attenuation_db; aw: ntaps,
    n_fit; hp/fd: coef. Unknown kinds, unknown or missing params are an AaexpError.

    Shape:
        the module maps Tensor[B x T] → Tensor[B x T] (causal, see FIRPrefilter).
    """
    kind = str(kind).lower()
    if kind not in PARAMS:
        raise AaexpError(f"pre-emphasis kind {kind!r} is not one of {', '.join(PARAMS)}")
    unknown = sorted(set(params) - set(PARAMS[kind]))
    if unknown:
        allowed = ", ".join(PARAMS[kind]) or "none"
        raise AaexpError(f"pre-emphasis {kind}: unknown parameter(s) {unknown}; allowed: {allowed}")
    missing = [k for k in PARAMS[kind] if params.get(k) is None]
    if missing:
        raise AaexpError(f"pre-emphasis {kind}: missing parameter(s) {missing} (loss.pre_emphasis.{kind} in the config)")
    p = params
    fs = float(fs)
    if not math.isfinite(fs) or fs <= 0:
        raise AaexpError(f"pre-emphasis: sample rate must be > 0 Hz, got {fs}")
    if kind == "none":
        taps = np.array([1.0])
    elif kind == "lp":
        taps = lowpass_taps(fs, float(p["passband_hz"]), float(p["stopband_hz"]), float(p["attenuation_db"]))
    elif kind == "aw":
        taps = a_weighting_taps(fs, int(p["ntaps"]), int(p["n_fit"]))
    elif kind == "hp":
        taps = np.array([1.0, -float(p["coef"])])
    else:  # fd
        taps = np.array([1.0, 0.0, -float(p["coef"])])
    return FIRPrefilter(taps, kind)
