"""Clustering, physical reconstruction errors, semantic tilt and interpolation against independent sums."""

import numpy as np
import pytest
from scipy import signal

from aaexp.eq import metrics
from aaexp.eq.train import contrastive_weight


def _silhouette_loop(x: np.ndarray, labels: list[str]) -> float:
    """Rousseeuw 1987 written out: s = (b - a) / max(a, b), 0 for singleton clusters."""
    labels = np.asarray(labels)
    s = []
    for i in range(len(x)):
        d = np.sqrt(((x - x[i]) ** 2).sum(1))
        own = labels == labels[i]
        if own.sum() == 1:
            s.append(0.0)
            continue
        a = d[own].sum() / (own.sum() - 1)
        b = min(d[labels == w].mean() for w in set(labels) if w != labels[i])
        s.append((b - a) / max(a, b))
    return float(np.mean(s))


def _davies_bouldin_loop(x: np.ndarray, labels: list[str]) -> float:
    labels = np.asarray(labels)
    words = sorted(set(labels))
    c = {w: x[labels == w].mean(0) for w in words}
    s = {w: np.sqrt(((x[labels == w] - c[w]) ** 2).sum(1)).mean() for w in words}
    return float(np.mean([max((s[i] + s[j]) / np.linalg.norm(c[i] - c[j]) for j in words if j != i) for i in words]))


def test_clustering_matches_the_definitions():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (30, 4)), rng.normal(2, 1, (25, 4)), rng.normal(-1, 0.5, (5, 4)), [[9, 9, 9, 9]]])
    labels = ["warm"] * 30 + ["bright"] * 25 + ["deep"] * 5 + ["lonely"]
    got = metrics.clustering(x, labels)
    assert got["silhouette"] == pytest.approx(_silhouette_loop(x, labels), rel=1e-9)
    assert got["davies_bouldin"] == pytest.approx(_davies_bouldin_loop(x, labels), rel=1e-9)
    assert np.isnan(metrics.clustering(x, ["warm"] * len(x))["silhouette"])


def test_physical_errors_in_db_octaves_and_decades():
    target = np.array([[0, 100, 0, 400, 1, 0, 1000, 1, 0, 3000, 1, 0, 8000]], dtype=float).repeat(2, 0)
    dec = target.copy()
    dec[0, [0, 2, 5, 8, 11]] += [3, -3, 3, -3, 3]   # 3 dB off everywhere in row 0
    dec[1, [1, 3, 6, 9, 12]] *= [2, 0.5, 4, 1, 1]   # 1, 1, 2, 0, 0 octaves off in row 1
    dec[1, [4, 7, 10]] *= [10, 1, 0.1]               # 1, 0, 1 decades off
    e = metrics.physical_errors(dec, target)
    assert e["gain_mae_db"] == pytest.approx(3 * 5 / 10)
    assert e["freq_mae_oct"] == pytest.approx((1 + 1 + 2) / 10)
    assert e["q_mae_log10"] == pytest.approx(2 / 6)
    dec[1, 12] = -50.0  # non-positive frequency from linear heads counts as 1 Hz
    assert metrics.physical_errors(dec, target)["freq_mae_oct"] == pytest.approx((1 + 1 + 2 + np.log2(8000)) / 10)


def test_tilt_of_a_lone_low_shelf_matches_scipy():
    fs, q = 48000.0, 0.71
    p = np.array([9.0, 200.0, 0, 400, 1, 0, 1000, 1, 0, 3000, 1, 0, 8000])
    lo_band, hi_band = (100.0, 1000.0), (3000.0, 16000.0)
    # reference: the same shelf from its analog prototype via scipy.signal.bilinear, averaged in dB
    A, W, k = 10 ** (9 / 40), 2 * fs * np.tan(np.pi * 200 / fs), np.sqrt(10 ** (9 / 40)) / q
    bz, az = signal.bilinear(A * np.array([1 / W**2, k / W, A]), np.array([A / W**2, k / W, 1]), fs=fs)

    def mean_db(band):
        f = np.geomspace(*band, 256)
        return (20 * np.log10(np.abs(signal.freqz(bz, az, worN=f, fs=fs)[1]))).mean()

    got = metrics.band_tilt_db(p, lo_band, hi_band, fs, q)
    assert got == pytest.approx(mean_db(lo_band) - mean_db(hi_band), abs=1e-9)
    assert got > 0  # a bass boost is "warm" by this measure


def test_centroids_and_interpolation():
    z = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 6.0]])
    c = metrics.centroids(z, ["warm", "warm", "bright", "bright"], ["warm", "bright", "absent"])
    assert set(c) == {"warm", "bright"}
    np.testing.assert_allclose(c["warm"], [1, 0]) and np.testing.assert_allclose(c["bright"], [0, 5])
    path = metrics.interpolate(c["warm"], c["bright"], [0, 0.25, 1])
    np.testing.assert_allclose(path, [[1, 0], [0.75, 1.25], [0, 5]])


def test_contrastive_weight_schedule():
    w = [contrastive_weight(e, 150, 0.1, 0.5) for e in range(150)]
    assert w[0] == pytest.approx(0.1) and w[-1] == pytest.approx(0.5)
    np.testing.assert_allclose(np.diff(w), 0.4 / 149)
    assert contrastive_weight(0, 1, 0.1, 0.5) == 0.5
    assert {contrastive_weight(e, 100, 0.5, 0.5) for e in range(100)} == {0.5}
