"""Perception kernels against hand-made grids and an independent scipy correlation."""

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d

from aaexp.tnca.perception import Perception

SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)
LAPLACIAN = np.array([[1, 2, 1], [2, -12, 2], [1, 2, 1]], float)


def perceive(grid: np.ndarray, padding: str) -> np.ndarray:
    """Grid ndarray[C x H x W] -> ndarray[4C x H x W] through the module under test."""
    with torch.no_grad():
        return Perception(grid.shape[0], padding)(torch.from_numpy(grid).float()[None])[0].double().numpy()


def test_ramp_along_time_gives_constant_sobel_x_and_zero_elsewhere():
    h, w, slope = 6, 9, 0.5
    ramp = np.tile(slope * np.arange(w, dtype=float), (h, 1))[None]  # C=1, grows along the width
    out = perceive(ramp, "zero")
    inner = (slice(1, -1), slice(1, -1))
    # Sobel x of a ramp with slope a: (1+2+1)·(a - (-a)) = 8a; Sobel y and the Laplacian vanish.
    np.testing.assert_allclose(out[1][inner], 8 * slope, atol=1e-5)
    np.testing.assert_allclose(out[2][inner], 0.0, atol=1e-5)
    np.testing.assert_allclose(out[3][inner], 0.0, atol=1e-5)
    np.testing.assert_allclose(out[0], ramp[0], atol=1e-6)  # identity channel


def test_ramp_along_frequency_gives_constant_sobel_y():
    h, w, slope = 8, 5, -2.0
    ramp = np.tile(slope * np.arange(h, dtype=float)[:, None], (1, w))[None]
    out = perceive(ramp, "zero")
    np.testing.assert_allclose(out[2][1:-1, 1:-1], 8 * slope, atol=1e-5)
    np.testing.assert_allclose(out[1][1:-1, 1:-1], 0.0, atol=1e-5)


def test_laplacian_of_a_parabola_is_constant():
    h, w, a = 5, 7, 0.25
    j = np.arange(w, dtype=float)
    grid = np.tile(a * j**2, (h, 1))[None]
    # Σ k(r,c)·a(j+c-1)²: the outer columns weigh 1+2+1 each at offset ±1 -> 8a.
    np.testing.assert_allclose(perceive(grid, "zero")[3][1:-1, 1:-1], 8 * a, atol=1e-4)


@pytest.mark.parametrize("padding,boundary", [("zero", "fill"), ("circular", "wrap")])
def test_matches_scipy_correlation_channel_by_channel(padding, boundary):
    rng = np.random.default_rng(1)
    grid = rng.normal(size=(3, 7, 10))
    out = perceive(grid, padding)
    c = grid.shape[0]
    for ch in range(c):
        np.testing.assert_allclose(out[c + ch], correlate2d(grid[ch], SOBEL_X, mode="same", boundary=boundary), atol=1e-4)
        np.testing.assert_allclose(out[2 * c + ch], correlate2d(grid[ch], SOBEL_X.T, mode="same", boundary=boundary), atol=1e-4)
        np.testing.assert_allclose(out[3 * c + ch], correlate2d(grid[ch], LAPLACIAN, mode="same", boundary=boundary), atol=1e-4)


def test_circular_padding_has_no_edge_effect_on_a_periodic_pattern():
    h, w = 8, 12
    i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    tile = (np.sin(2 * np.pi * j / w) * np.cos(2 * np.pi * 2 * i / h))[None]
    # The same pattern continued periodically on a 3×3 tiling: its centre tile has true neighbours.
    big = np.tile(tile, (1, 3, 3))
    expected = correlate2d(big[0], SOBEL_X, mode="same")[h : 2 * h, w : 2 * w]
    circ = perceive(tile, "circular")
    zero = perceive(tile, "zero")
    np.testing.assert_allclose(circ[1], expected, atol=1e-5)  # every cell, edges included
    edge_err = np.abs(zero[1] - expected)
    assert edge_err[:, 0].max() > 0.5  # zero padding does distort the edge columns ...
    np.testing.assert_allclose(zero[1][1:-1, 1:-1], expected[1:-1, 1:-1], atol=1e-5)  # ... and only them
