"""What tells V1 and V2 apart: latent clustering, reconstruction in physical units, validity,
the semantic direction of decoded settings."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import davies_bouldin_score, silhouette_score

from aaexp.eq.biquad import response_db
from aaexp.eq.params import FREQ_IDX, GAIN_IDX, Q_IDX

FREQ_FLOOR_HZ = 1.0  # decoded frequencies <= 0 (possible with linear heads) count as 1 Hz in octave errors
Q_FLOOR = 1e-3


def clustering_undefined(labels: list[str]) -> str | None:
    """Why silhouette and Davies-Bouldin do not exist for these labels (None: they do)."""
    k = len(set(labels))
    if k < 2:
        return f"{k} descriptor(s); clustering scores compare at least 2"
    if k >= len(labels):
        return f"{k} descriptors for {len(labels)} rows; clustering scores need a descriptor with 2 or more rows"
    return None


def clustering(latent: np.ndarray, labels: list[str]) -> dict[str, float]:
    """Silhouette (higher is better, in [-1, 1]) and Davies-Bouldin (lower is better) of the
    latent codes grouped by descriptor (Euclidean). Latent Array[N x D]; NaN where
    `clustering_undefined` gives a reason."""
    if clustering_undefined(labels) is not None:
        return {"silhouette": float("nan"), "davies_bouldin": float("nan")}
    return {"silhouette": float(silhouette_score(latent, labels)), "davies_bouldin": float(davies_bouldin_score(latent, labels))}


def physical_errors(decoded: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Mean absolute reconstruction errors: gains in dB, frequencies in octaves, Q in decades (log10).

    decoded, target: Array[N x 13] in physical units.
    """
    f_hat = np.maximum(decoded[:, FREQ_IDX], FREQ_FLOOR_HZ)
    q_hat = np.maximum(decoded[:, Q_IDX], Q_FLOOR)
    return {
        "gain_mae_db": float(np.mean(np.abs(decoded[:, GAIN_IDX] - target[:, GAIN_IDX]))),
        "freq_mae_oct": float(np.mean(np.abs(np.log2(f_hat / target[:, FREQ_IDX])))),
        "q_mae_log10": float(np.mean(np.abs(np.log10(q_hat / target[:, Q_IDX])))),
    }


def band_tilt_db(params: np.ndarray, region_a: tuple[float, float], region_b: tuple[float, float],
                 fs: float, shelf_q: float, n: int = 256) -> float:
    """Mean magnitude response (dB, log-spaced grid) over region_a minus that over region_b."""
    fa = np.geomspace(*region_a, n)
    fb = np.geomspace(*region_b, n)
    ra, _ = response_db(params, fa, fs, shelf_q)
    rb, _ = response_db(params, fb, fs, shelf_q)
    return float(ra.mean() - rb.mean())


def centroids(latent: np.ndarray, labels: list[str], words) -> dict[str, np.ndarray]:
    """Mean latent code of each descriptor in `words` (present ones). Each Array[D]."""
    labels = np.asarray(labels)
    return {w: latent[labels == w].mean(axis=0) for w in words if np.any(labels == w)}


def interpolate(z_a: np.ndarray, z_b: np.ndarray, alphas) -> np.ndarray:
    """Points on the straight line (1 - alpha) z_a + alpha z_b. Array[len(alphas) x D]."""
    a = np.asarray(list(alphas), dtype=np.float64)[:, None]
    return (1.0 - a) * z_a[None] + a * z_b[None]
