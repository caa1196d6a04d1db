"""A deliberately plain NumPy NMR: loops over items, frames and bands, written from Kabal's report.

It shares nothing with `aaexp.aa.loss.nmr` except the BS.1387 band table (data, checked on its own in
test_nmr.py); every formula is written out again here, the spreading straight from its
definition (a double sum, normalised by summing the weights, not by the closed forms), so the
vectorised torch version can be checked against it. Also used by scripts/bench_aa_core.py.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from aaexp.aa.signal.peaq import critical_bands

DZ = 0.25


@lru_cache(maxsize=8)
def _constants(fs: float, n_fft: int, bits: float, level_db: float, f_test: float):
    lower, centre, upper = critical_bands()
    n_bands = len(centre)
    n = np.arange(n_fft)
    hann = 0.5 * (1.0 - np.cos(2.0 * np.pi * n / (n_fft - 1)))          # symmetric Hann
    # Loudness: a full-scale sine at f_test peaks at level_db in the windowed DFT.
    amax = 2.0 ** (bits - 1)
    fn = f_test / fs
    kk = math.floor(fn * n_fft)
    d = min((kk + 1) / n_fft - fn, fn - kk / n_fft) * (n_fft - 1)
    gp = math.sin(math.pi * d) / (math.pi * d * (1 - d * d))
    gain = 10 ** (level_db / 20) / (gp * amax / 4 * (n_fft - 1))
    # Outer/middle ear.
    ear = np.zeros(n_fft // 2 + 1)
    for k in range(1, n_fft // 2 + 1):
        f = k * fs / n_fft / 1000.0
        a_db = -2.184 * f ** -0.8 + 6.5 * math.exp(-0.6 * (f - 3.3) ** 2) - 0.001 * f ** 3.6
        ear[k] = 10 ** (a_db / 20)
    # Fraction of each bin inside each band.
    df = fs / n_fft
    u = np.zeros((n_bands, n_fft // 2 + 1))
    for i in range(n_bands):
        for k in range(n_fft // 2 + 1):
            u[i, k] = max(0.0, min(upper[i], (k + 0.5) * df) - max(lower[i], (k - 0.5) * df)) / df
    e_internal = np.array([10 ** (1.456 * (fc / 1000) ** -0.8 / 10) for fc in centre])
    offset = np.array([10 ** (-(3.0 if i * DZ <= 12 else 0.25 * i * DZ) / 10) for i in range(n_bands)])
    a_upper = np.array([10 ** ((-2.4 - 23 / fc) * DZ) for fc in centre])
    norm = _spread(np.ones(n_bands), a_upper, np.ones(n_bands))
    return amax, gain, hann, ear, u, e_internal, offset, a_upper, norm


def _spread(e: np.ndarray, a_upper: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """Es[i] = (Σ_m (E[m]·w_m(i)/Σ_j w_m(j))^0.4)^(1/0.4) / norm[i], w_m the two-slope spreading."""
    n_bands = len(e)
    a_lower = 10 ** (-2.7 * DZ)
    acc = np.zeros(n_bands)
    idx = np.arange(n_bands)
    for m in range(n_bands):
        a_up = a_upper[m] * e[m] ** (0.2 * DZ)
        w = np.where(idx <= m, a_lower ** (m - idx).clip(min=0), a_up ** (idx - m).clip(min=0))
        acc += (e[m] * w / w.sum()) ** 0.4
    return acc ** (1 / 0.4) / norm


def nmr_loop(signal: np.ndarray, reference: np.ndarray, fs: float, n_fft: int = 2048, hop: int = 1024,
             bits: float = 64, level_db: float = 92.0, f_test: float = 1019.5, e_min: float = 1e-12) -> np.ndarray:
    """NMR in dB of each row of `signal` against the same row of `reference`: array[B]."""
    signal, reference = np.atleast_2d(signal), np.atleast_2d(reference)
    amax, gain, hann, ear, u, e_internal, offset, a_upper, norm = _constants(
        float(fs), n_fft, float(bits), float(level_db), float(f_test))
    n_bands = u.shape[0]
    out = []
    for s_row, r_row in zip(signal, reference):
        s_q = np.round(amax * s_row) * gain
        r_q = np.round(amax * r_row) * gain
        n_frames = 1 + (len(s_row) - n_fft) // hop
        total = 0.0
        for f in range(n_frames):
            seg = slice(f * hop, f * hop + n_fft)
            xs = np.abs(np.fft.rfft(s_q[seg] * hann)) * ear
            xr = np.abs(np.fft.rfft(r_q[seg] * hann)) * ear
            noise = np.zeros(n_bands)
            energy = np.zeros(n_bands)
            for i in range(n_bands):
                noise[i] = max(np.dot(u[i], (xs - xr) ** 2), e_min)
                energy[i] = max(np.dot(u[i], xr ** 2), e_min) + e_internal[i]
            mask = offset * _spread(energy, a_upper, norm)
            for i in range(n_bands):
                total += noise[i] / mask[i]
        out.append(10 * np.log10(total / (n_frames * n_bands)))
    return np.array(out)
