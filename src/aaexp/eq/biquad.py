"""RBJ Audio-EQ-Cookbook biquads (shelves and peaking) and the magnitude response of a 5-band setting.

Coefficients follow R. Bristow-Johnson's "Cookbook formulae for audio EQ biquad filter
coefficients" with A = 10^(gain/40), w0 = 2 pi f0 / fs, alpha = sin(w0) / (2 Q); responses are
evaluated with scipy.signal.sosfreqz.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import sosfreqz

from aaexp.eq.params import BANDS


def rbj_biquad(kind: str, f0: float, gain_db: float, q: float, fs: float) -> np.ndarray:
    """One RBJ section, normalised so a0 = 1. Returns Array[6] = [b0, b1, b2, 1, a1, a2]."""
    A = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * f0 / fs
    cw, alpha = np.cos(w0), np.sin(w0) / (2.0 * q)
    if kind == "peaking":
        b = [1 + alpha * A, -2 * cw, 1 - alpha * A]
        a = [1 + alpha / A, -2 * cw, 1 - alpha / A]
    elif kind in ("low_shelf", "high_shelf"):
        s = 1.0 if kind == "low_shelf" else -1.0  # the high shelf mirrors the signs of cos w0
        k = 2.0 * np.sqrt(A) * alpha
        b = [A * ((A + 1) - s * (A - 1) * cw + k), s * 2 * A * ((A - 1) - s * (A + 1) * cw), A * ((A + 1) - s * (A - 1) * cw - k)]
        a = [(A + 1) + s * (A - 1) * cw + k, -s * 2 * ((A - 1) + s * (A + 1) * cw), (A + 1) + s * (A - 1) * cw - k]
    else:
        raise ValueError(f"unknown biquad kind {kind!r}")
    b, a = np.asarray(b, dtype=np.float64), np.asarray(a, dtype=np.float64)
    return np.concatenate([b / a[0], a / a[0]])


def setting_sos(params: np.ndarray, fs: float, shelf_q: float, max_f0_fraction: float = 0.49) -> tuple[np.ndarray, bool]:
    """Second-order sections of one 13-parameter setting.

    Centre frequencies are clipped to [1 Hz, max_f0_fraction * fs] (a biquad cannot sit above
    Nyquist) and Q to >= 0.01; the flag says whether anything had to be clipped.
    Returns (Array[5 x 6], clipped).
    """
    sos, clipped = [], False
    for g_i, f_i, q_i, kind in BANDS:
        f0 = float(params[f_i])
        q = shelf_q if q_i is None else float(params[q_i])
        f_ok = float(np.clip(f0, 1.0, max_f0_fraction * fs)) if np.isfinite(f0) else 1.0
        q_ok = max(q, 0.01) if np.isfinite(q) else shelf_q
        g = float(params[g_i]) if np.isfinite(params[g_i]) else 0.0
        clipped |= (f_ok != f0) or (q_ok != q) or (g != params[g_i])
        sos.append(rbj_biquad(kind, f_ok, g, q_ok, fs))
    return np.stack(sos), clipped


def response_db(params: np.ndarray, freqs_hz: np.ndarray, fs: float, shelf_q: float) -> tuple[np.ndarray, bool]:
    """Magnitude response in dB of a setting at `freqs_hz`. Returns (Array[F], clipped)."""
    sos, clipped = setting_sos(params, fs, shelf_q)
    _, h = sosfreqz(sos, worN=np.asarray(freqs_hz, dtype=np.float64), fs=fs)
    return 20.0 * np.log10(np.maximum(np.abs(h), 1e-12)), clipped


def log_freqs(f_min: float, f_max: float, n: int) -> np.ndarray:
    """Log-spaced evaluation grid in Hz. Array[n]."""
    return np.geomspace(f_min, f_max, n)
