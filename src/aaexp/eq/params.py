"""The 13-parameter layout of a SAFE 5-band EQ setting and the plugin's valid ranges.

Layout (column order of SAFE-DB, 0-based within the 13):
    [g1, f1 | g2, f2, q2 | g3, f3, q3 | g4, f4, q4 | g5, f5]
Band 1 is a low shelf, bands 2-4 are peaking, band 5 is a high shelf (shelf Q fixed, not stored).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_PARAMS = 13
GAIN_IDX = [0, 2, 5, 8, 11]
FREQ_IDX = [1, 3, 6, 9, 12]
Q_IDX = [4, 7, 10]
# For each band: (gain index, frequency index, Q index or None, filter type).
BANDS = [
    (0, 1, None, "low_shelf"),
    (2, 3, 4, "peaking"),
    (5, 6, 7, "peaking"),
    (8, 9, 10, "peaking"),
    (11, 12, None, "high_shelf"),
]
NAMES = ["band1_gain_db", "band1_freq_hz",
         "band2_gain_db", "band2_freq_hz", "band2_q",
         "band3_gain_db", "band3_freq_hz", "band3_q",
         "band4_gain_db", "band4_freq_hz", "band4_q",
         "band5_gain_db", "band5_freq_hz"]


@dataclass(frozen=True)
class PluginRanges:
    """Valid ranges of the SAFE equaliser plugin (from `data.plugin` in the config)."""

    gain_db: tuple[float, float]
    freq_hz: tuple[tuple[float, float], ...]  # one (lo, hi) per band
    q: tuple[float, float]
    shelf_q: float
    rel_tol: float = 0.0

    @classmethod
    def from_cfg(cls, c) -> "PluginRanges":
        return cls(tuple(c.gain_db), tuple(tuple(b) for b in c.freq_hz), tuple(c.q), float(c.shelf_q), float(c.rel_tol))

    def bounds(self) -> np.ndarray:
        """Lower and upper bound of each parameter. Returns Array[2 x 13]."""
        lo, hi = np.empty(N_PARAMS), np.empty(N_PARAMS)
        lo[GAIN_IDX], hi[GAIN_IDX] = self.gain_db
        lo[Q_IDX], hi[Q_IDX] = self.q
        for band, i in enumerate(FREQ_IDX):
            lo[i], hi[i] = self.freq_hz[band]
        return np.stack([lo, hi])

    def valid_mask(self, params: np.ndarray) -> np.ndarray:
        """Which parameters lie inside the plugin ranges (NaN/inf never do). Bool[N x 13]."""
        params = np.asarray(params, dtype=np.float64)
        if params.shape[-1] != N_PARAMS:
            raise ValueError(f"expected {N_PARAMS} parameters per setting, got shape {params.shape}")
        lo, hi = self.bounds()
        slack = self.rel_tol * np.maximum(np.abs(lo), np.abs(hi))
        with np.errstate(invalid="ignore"):
            return np.isfinite(params) & (params >= lo - slack) & (params <= hi + slack)

    def valid(self, params: np.ndarray) -> np.ndarray:
        """Whether each whole setting is realisable on the plugin. Bool[N]."""
        return self.valid_mask(params).all(axis=-1)

    def clip(self, params: np.ndarray) -> np.ndarray:
        """Parameters clipped into the plugin ranges. Array[N x 13]."""
        lo, hi = self.bounds()
        return np.clip(params, lo, hi)


def describe_invalid(params: np.ndarray, ranges: PluginRanges, limit: int = 3) -> str:
    """A short human note on what is out of range in one setting (empty when valid)."""
    mask = ranges.valid_mask(np.asarray(params)[None])[0]
    lo, hi = ranges.bounds()
    bad = [f"{NAMES[i]}={params[i]:.4g} (range {lo[i]:g}..{hi[i]:g})" for i in np.flatnonzero(~mask)]
    return "; ".join(bad[:limit]) + (f"; +{len(bad) - limit} more" if len(bad) > limit else "")
