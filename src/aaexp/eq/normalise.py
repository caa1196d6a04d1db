"""Parameter normalisations: V1 z-scores of raw values, V2 log10 + fixed-bound min-max to [0, 1].

Both map Tensor[N x 13] physical settings (dB, Hz, Q) to the network's units and back; `inverse`
is the exact mirror of `forward`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from aaexp.core.errors import AaexpError
from aaexp.eq.params import FREQ_IDX, GAIN_IDX, N_PARAMS, Q_IDX


class ZScore:
    """V1: (x - mean) / std per parameter, statistics fitted on the training rows."""

    kind = "zscore"

    def __init__(self, mean, std):
        self.mean = torch.as_tensor(mean, dtype=torch.float64)
        self.std = torch.as_tensor(std, dtype=torch.float64)

    @classmethod
    def fit(cls, params: np.ndarray, eps: float) -> "ZScore":
        params = np.asarray(params, dtype=np.float64)
        return cls(params.mean(axis=0), params.std(axis=0) + eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Physical -> z-scores. Tensor[N x 13] -> Tensor[N x 13]."""
        return (x - self.mean.to(x)) / self.std.to(x)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """z-scores -> physical (linear, so nothing keeps values in range). Tensor[N x 13]."""
        return y * self.std.to(y) + self.mean.to(y)

    def state(self) -> dict:
        return {"kind": self.kind, "mean": self.mean.tolist(), "std": self.std.tolist()}


class LogMinMax:
    """V2: gains min-max from dB; frequencies and Q through log10 first; all to [0, 1] with fixed bounds.

    `freq_hz` is one [lo, hi] for every band (the original V2: 20-20,000 Hz) or one pair per band
    (e.g. the plugin's own ranges, so that any [0, 1] output is a valid setting).
    """

    kind = "log_minmax"

    def __init__(self, gain_db, freq_hz, q):
        f = np.asarray([list(b) for b in freq_hz] if np.ndim(freq_hz[0]) else list(freq_hz), dtype=np.float64)
        f = np.broadcast_to(f, (len(FREQ_IDX), 2)) if f.shape == (2,) else f
        if f.shape != (len(FREQ_IDX), 2) or (f <= 0).any():
            raise AaexpError(f"model.norm.freq_hz must be [lo, hi] or {len(FREQ_IDX)} such pairs, all > 0 Hz")
        lo, hi = torch.empty(N_PARAMS, dtype=torch.float64), torch.empty(N_PARAMS, dtype=torch.float64)
        lo[GAIN_IDX], hi[GAIN_IDX] = float(gain_db[0]), float(gain_db[1])
        lo[FREQ_IDX], hi[FREQ_IDX] = torch.from_numpy(np.log10(f[:, 0])), torch.from_numpy(np.log10(f[:, 1]))
        lo[Q_IDX], hi[Q_IDX] = math.log10(q[0]), math.log10(q[1])
        if not bool((hi > lo).all()):
            raise AaexpError("model.norm bounds must be increasing (lo < hi) for gain, frequency and Q")
        self.bounds = {"gain_db": list(map(float, gain_db)), "freq_hz": f.tolist(), "q": list(map(float, q))}
        self.lo, self.hi = lo, hi
        self.is_log = torch.zeros(N_PARAMS, dtype=torch.bool)
        self.is_log[FREQ_IDX + Q_IDX] = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Physical -> [0, 1] inside the bounds. Tensor[N x 13] -> Tensor[N x 13]."""
        is_log = self.is_log.to(x.device)
        v = torch.where(is_log, torch.log10(torch.where(is_log, x, torch.ones_like(x))), x)
        return (v - self.lo.to(x)) / (self.hi - self.lo).to(x)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """[0, 1] -> physical. Tensor[N x 13] -> Tensor[N x 13]."""
        v = y * (self.hi - self.lo).to(y) + self.lo.to(y)
        return torch.where(self.is_log.to(y.device), 10.0 ** v, v)

    def state(self) -> dict:
        return {"kind": self.kind, **self.bounds}


def build(cfg, train_params: np.ndarray) -> ZScore | LogMinMax:
    """The normaliser that `model.norm` names, fitted on the training rows where it needs fitting."""
    if cfg.kind == "zscore":
        return ZScore.fit(train_params, float(cfg.eps))
    if cfg.kind == "log_minmax":
        return LogMinMax(cfg.gain_db, cfg.freq_hz, cfg.q)
    raise AaexpError(f"model.norm.kind={cfg.kind!r} is not one of zscore, log_minmax")


def from_state(state: dict) -> ZScore | LogMinMax:
    """Mirror of `.state()`: rebuild a normaliser from an exported model."""
    if state["kind"] == "zscore":
        return ZScore(state["mean"], state["std"])
    if state["kind"] == "log_minmax":
        return LogMinMax(state["gain_db"], state["freq_hz"], state["q"])
    raise AaexpError(f"unknown normaliser kind {state['kind']!r} in the model file")
