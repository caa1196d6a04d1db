"""Constant parts of the PEAQ (ITU-R BS.1387) basic-version ear model, in NumPy float64.

Follows P. Kabal, "An examination and interpretation of ITU-R BS.1387: Perceptual evaluation of
audio quality", McGill University, 2003. `aaexp.aa.loss.nmr`
builds the differentiable noise-to-mask ratio on top of these.
"""

from __future__ import annotations

import math

import numpy as np

BAND_STEP_BARK = 0.25          # dz: resolution of the critical-band (pitch) scale
BAND_LOW_HZ = 80.0
BAND_HIGH_HZ = 18000.0

# BS.1387 tabulates the 109 band edges/centres; its table matches 650·sinh(z/7) on the uniform
# z grid to the printed 3 decimals (±0.002 Hz) except for these entries, kept as printed so that
# NMR values agree with the standard's tables and the DAFx25/dafx24 implementations.
_TABLE_AS_PRINTED = {
    "lower": {66: 3853.817},
    "centre": {100: 13294.850},
    "upper": {28: 933.113, 70: 4643.482},
}


def hz_to_bark(f_hz):
    """Critical-band rate z = 7·asinh(f/650)."""
    return 7.0 * np.arcsinh(np.asarray(f_hz, dtype=np.float64) / 650.0)


def bark_to_hz(z):
    """Inverse of `hz_to_bark`."""
    return 650.0 * np.sinh(np.asarray(z, dtype=np.float64) / 7.0)


def critical_bands() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower, centre, upper) edges in Hz of the 109 quarter-Bark bands from 80 Hz to 18 kHz."""
    z_lo, z_hi = hz_to_bark(BAND_LOW_HZ), hz_to_bark(BAND_HIGH_HZ)
    n_bands = int(math.ceil((z_hi - z_lo) / BAND_STEP_BARK))
    i = np.arange(n_bands)
    zl = z_lo + i * BAND_STEP_BARK
    zu = np.minimum(zl + BAND_STEP_BARK, z_hi)
    edges = {"lower": bark_to_hz(zl), "centre": bark_to_hz(0.5 * (zl + zu)), "upper": bark_to_hz(zu)}
    for name, fixes in _TABLE_AS_PRINTED.items():
        edges[name] = np.round(edges[name], 3)
        for idx, value in fixes.items():
            edges[name][idx] = value
    return edges["lower"], edges["centre"], edges["upper"]


def ear_weights(fs: float, n_fft: int) -> np.ndarray:
    """Outer/middle-ear amplitude weighting |W(f)| on the rfft bins; 0 at DC."""
    f_khz = np.arange(n_fft // 2 + 1) * (fs / n_fft) / 1000.0
    with np.errstate(divide="ignore"):
        a_db = -2.184 * f_khz ** -0.8 + 6.5 * np.exp(-0.6 * (f_khz - 3.3) ** 2) - 1e-3 * f_khz ** 3.6
    w = 10.0 ** (a_db / 20.0)
    w[0] = 0.0
    return w


def band_grouping(fs: float, n_fft: int, lower: np.ndarray, upper: np.ndarray):
    """Sparse bin→band weights: the fraction of bin k's width [k−½, k+½]·fs/N inside band i.

    Returns (band index, bin index, weight) arrays of the nonzero entries.
    """
    df = fs / n_fft
    k = np.arange(n_fft // 2 + 1)
    overlap = np.minimum(upper[:, None], (k + 0.5) * df) - np.maximum(lower[:, None], (k - 0.5) * df)
    u = np.maximum(overlap, 0.0) / df
    band, bin_ = np.nonzero(u)
    return band, bin_, u[band, bin_]


def internal_noise(centre_hz: np.ndarray) -> np.ndarray:
    """Energy of the ear's internal noise per band, 10^(1.456·f_kHz^−0.8 / 10)."""
    return 10.0 ** (1.456 * (centre_hz / 1000.0) ** -0.8 / 10.0)


def mask_offset(n_bands: int, dz: float = BAND_STEP_BARK) -> np.ndarray:
    """Linear mask offset g_m: 3 dB below 12 Bark, 0.25·z dB above (basic version)."""
    z = np.arange(n_bands) * dz
    offset_db = np.where(z <= 12.0, 3.0, 0.25 * z)
    return 10.0 ** (-offset_db / 10.0)


def loudness_scale(n_fft: int, bits: float, level_db_spl: float, f_test_hz: float, fs: float) -> float:
    """G_L: maps a full-scale sine at f_test to level_db_spl in the Hann-windowed DFT (Kabal: loudness calibration).

    The sine falls between bins, so the largest bin is the continuous peak times the peak factor
    g_p of the Hann window's response at the offset to the nearest bin.
    """
    amax = 2.0 ** (float(bits) - 1.0)
    w = n_fft - 1
    f_norm = f_test_hz / fs
    k = math.floor(f_norm * n_fft)
    offset = min((k + 1) / n_fft - f_norm, f_norm - k / n_fft) * w
    peak_factor = 1.0 if offset == 0 else math.sin(math.pi * offset) / (math.pi * offset * (1.0 - offset ** 2))
    return 10.0 ** (level_db_spl / 20.0) / (peak_factor * amax / 4.0 * w)


def spreading_slopes(centre_hz: np.ndarray, dz: float = BAND_STEP_BARK) -> tuple[float, np.ndarray]:
    """(a_L, a_U,C): per-band power ratios of the lower (27 dB/Bark) and level-free upper spreading
    slopes (24 + 230/f_c dB/Bark); the upper one is raised by E^(0.2·dz) per masker (Kabal: spreading)."""
    a_lower = 10.0 ** (-2.7 * dz)
    a_upper = 10.0 ** ((-2.4 - 23.0 / centre_hz) * dz)
    return a_lower, a_upper
