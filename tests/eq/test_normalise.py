"""V1 z-score and V2 log10 + min-max normalisations: closed forms and exact round trips."""

import math

import numpy as np
import pytest
import torch

from aaexp.core.config import compose
from aaexp.eq import normalise
from aaexp.eq.params import FREQ_IDX, GAIN_IDX, Q_IDX


def _random_settings(n: int, seed: int) -> np.ndarray:
    """Settings drawn inside the V2 bounds (20-20,000 Hz, Q 0.1-10, +-12 dB), log-uniform where log."""
    rng = np.random.default_rng(seed)
    p = np.empty((n, 13))
    p[:, GAIN_IDX] = rng.uniform(-12, 12, (n, 5))
    p[:, FREQ_IDX] = 10 ** rng.uniform(math.log10(20), math.log10(20000), (n, 5))
    p[:, Q_IDX] = 10 ** rng.uniform(-1, 1, (n, 3))
    return p


@pytest.fixture(scope="module")
def v2():
    return normalise.build(compose(["+experiment=eq_v2"]).model.norm, np.empty((0, 13)))


def test_v2_matches_the_closed_form(v2):
    p = _random_settings(200, 0)
    y = v2.forward(torch.tensor(p)).numpy()
    np.testing.assert_allclose(y[:, GAIN_IDX], (p[:, GAIN_IDX] + 12) / 24, rtol=0, atol=1e-12)
    np.testing.assert_allclose(y[:, FREQ_IDX], (np.log10(p[:, FREQ_IDX]) - np.log10(20)) / (np.log10(20000) - np.log10(20)), atol=1e-12)
    np.testing.assert_allclose(y[:, Q_IDX], (np.log10(p[:, Q_IDX]) + 1) / 2, atol=1e-12)
    assert (y >= 0).all() and (y <= 1).all()


def test_v2_bounds_map_to_0_and_1(v2):
    lo = np.array([-12, 20, -12, 20, 0.1, -12, 20, 0.1, -12, 20, 0.1, -12, 20], dtype=float)
    hi = np.array([12, 20000, 12, 20000, 10, 12, 20000, 10, 12, 20000, 10, 12, 20000], dtype=float)
    y = v2.forward(torch.tensor(np.stack([lo, hi]))).numpy()
    np.testing.assert_allclose(y[0], 0, atol=1e-12)
    np.testing.assert_allclose(y[1], 1, atol=1e-12)


def test_v2_round_trip_is_exact_inside_the_bounds(v2):
    p = _random_settings(500, 1)
    back = v2.inverse(v2.forward(torch.tensor(p))).numpy()
    np.testing.assert_allclose(back, p, rtol=1e-12, atol=1e-12)
    # and the other way: every point of [0, 1]^13 is a setting that maps back to itself
    y = np.random.default_rng(2).uniform(0, 1, (500, 13))
    np.testing.assert_allclose(v2.forward(v2.inverse(torch.tensor(y))).numpy(), y, atol=1e-12)


def test_v2_state_round_trip(v2):
    again = normalise.from_state(v2.state())
    p = torch.tensor(_random_settings(10, 3))
    assert torch.equal(again.forward(p), v2.forward(p))


def test_v1_zscore_fit_and_round_trip():
    cfg = compose(["+experiment=eq_v1"]).model.norm
    p = _random_settings(300, 4)
    z = normalise.build(cfg, p)
    y = z.forward(torch.tensor(p)).numpy()
    np.testing.assert_allclose(y, (p - p.mean(0)) / (p.std(0) + cfg.eps), atol=1e-10)
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(z.inverse(torch.tensor(y)).numpy(), p, rtol=1e-12)
    again = normalise.from_state(z.state())
    np.testing.assert_allclose(again.inverse(torch.tensor(y)).numpy(), p, rtol=1e-12)


def test_v1_inverse_is_linear_and_unbounded():
    """z-scores far outside the data map linearly far outside the plugin ranges (the V1 risk)."""
    p = _random_settings(300, 5)
    z = normalise.build(compose(["+experiment=eq_v1"]).model.norm, p)
    big = torch.full((1, 13), 10.0)
    np.testing.assert_allclose(z.inverse(big).numpy()[0], p.mean(0) + 10 * p.std(0), rtol=1e-6)


def test_v2_with_the_plugins_per_band_ranges_decodes_only_valid_settings():
    """model.norm.freq_hz='${data.plugin.freq_hz}': every point of [0, 1]^13 is a valid plugin setting."""
    from aaexp.eq.params import PluginRanges

    cfg = compose(["+experiment=eq_v2", "model.norm.freq_hz=${data.plugin.freq_hz}"])
    n = normalise.build(cfg.model.norm, np.empty((0, 13)))
    ranges = PluginRanges.from_cfg(cfg.data.plugin)
    y = np.random.default_rng(6).uniform(0, 1, (2000, 13))
    y[:2] = [[0] * 13, [1] * 13]
    x = n.inverse(torch.tensor(y)).numpy()
    assert ranges.valid(x).all()
    np.testing.assert_allclose(x[0, FREQ_IDX], [22, 82, 180, 220, 580], rtol=1e-12)
    np.testing.assert_allclose(x[1, FREQ_IDX], [1000, 3900, 4700, 10000, 20000], rtol=1e-12)
    # band 2: log10 between 82 and 3,900 Hz
    np.testing.assert_allclose(y[:, 3], (np.log10(x[:, 3]) - np.log10(82)) / (np.log10(3900) - np.log10(82)), atol=1e-12)
    np.testing.assert_allclose(normalise.from_state(n.state()).forward(torch.tensor(x)).numpy(), y, atol=1e-12)
