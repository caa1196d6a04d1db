"""Validity against the SAFE plugin ranges."""

import numpy as np
import pytest

from aaexp.core.config import compose
from aaexp.eq.params import FREQ_IDX, NAMES, PluginRanges, describe_invalid


@pytest.fixture(scope="module")
def ranges() -> PluginRanges:
    return PluginRanges.from_cfg(compose(["study=eq"]).data.plugin)


def _inside() -> np.ndarray:
    # [g1, f1 | g2, f2, q2 | g3, f3, q3 | g4, f4, q4 | g5, f5], every value well inside its range
    return np.array([3.0, 100.0, -2.0, 400.0, 0.7, 1.0, 1000.0, 2.0, 4.0, 3000.0, 1.0, -6.0, 8000.0])


def test_ranges_are_the_plugins(ranges):
    lo, hi = ranges.bounds()
    # SOURCE.md: band 1 22-1,000 Hz, band 2 82-3,900, band 3 180-4,700, band 4 220-10,000, band 5 580-20,000
    assert list(zip(lo[FREQ_IDX], hi[FREQ_IDX])) == [(22, 1000), (82, 3900), (180, 4700), (220, 10000), (580, 20000)]
    assert (lo[[0, 2, 5, 8, 11]] == -12).all() and (hi[[0, 2, 5, 8, 11]] == 12).all()
    assert (lo[[4, 7, 10]] == 0.1).all() and (hi[[4, 7, 10]] == 10).all()


def test_valid_setting_passes_and_edges_are_inclusive(ranges):
    assert ranges.valid(_inside()[None])[0]
    lo, hi = ranges.bounds()
    assert ranges.valid(np.stack([lo, hi])).all()


@pytest.mark.parametrize("i, value", [(12, 1.6e6), (1, 21.0), (1, 1500.0), (0, 12.5), (4, 0.05), (10, 11.0), (6, np.nan), (3, np.inf)])
def test_out_of_range_parameter_is_caught(ranges, i, value):
    p = _inside()
    p[i] = value
    mask = ranges.valid_mask(p[None])[0]
    assert not ranges.valid(p[None])[0]
    assert list(np.flatnonzero(~mask)) == [i]
    assert NAMES[i] in describe_invalid(p, ranges)


def test_float32_rounding_at_the_edge_is_tolerated(ranges):
    p = _inside()
    p[12] = np.float32(20000.0) * (1 + 1e-6)  # rounding noise, far below rel_tol
    assert ranges.valid(p[None])[0]
    p[12] = 20000.0 * 1.01
    assert not ranges.valid(p[None])[0]
