"""Exact bandlimiting checked against independent ground truth.

For a memoryless nonlinearity f(θ) = tanh(g·(A·sin θ + c)) the true harmonic amplitudes are the
Fourier coefficients of one period of f, computed here from a very finely sampled period (4,096
points per period, i.e. a sample rate of 4,096·f0; the coefficients of tanh decay exponentially,
so this is exact to rounding) and cross-checked by numerical integration. The true bandlimited
signal at the naive rate is their sum below Nyquist; ours must match it to better than −100 dB.
"""

import numpy as np
import pytest
import scipy.integrate
import scipy.signal
import torch

from aaexp.aa.signal import tones
from aaexp.aa.signal.bandlimit import bandlimit, harmonic_magnitudes, harmonic_mask, split_harmonics
from aaexp.core.errors import AaexpError

FS = 44100
G, AMP, BIAS, PHASE = 8.0, 1.0, 0.2, 0.7      # hard clipping with a DC offset: odd and even harmonics


def shaper(x):
    return np.tanh(G * (x + BIAS))


def fourier_coefficients(points_per_period: int = 4096) -> np.ndarray:
    """C_k of f(θ) = Σ_k C_k e^{ikθ} for the shaper driven by AMP·sin θ."""
    theta = 2 * np.pi * np.arange(points_per_period) / points_per_period
    return np.fft.fft(shaper(AMP * np.sin(theta))) / points_per_period


def true_bandlimited(m: int, n: int, coef: np.ndarray) -> np.ndarray:
    """C_0 + 2·Re Σ_{k: k·m < n/2} C_k e^{ik(2π·m·t/n + φ)}: the ideal naive-rate bandlimited output."""
    theta = 2 * np.pi * m * np.arange(n) / n + PHASE
    out = np.full(n, coef[0].real)
    for k in range(1, (n - 1) // (2 * m) + 1):
        out += 2 * (coef[k] * np.exp(1j * k * theta)).real
    return out


@pytest.fixture(scope="module")
def coef():
    c = fourier_coefficients()
    # Converged: halving the resolution changes nothing that matters at −100 dB.
    c_half = fourier_coefficients(2048)
    np.testing.assert_allclose(c[:200], c_half[:200], atol=1e-15)
    # And the FFT agrees with direct numerical integration for a few harmonics.
    for k in (0, 1, 2, 3, 7):
        re = scipy.integrate.quad(lambda t: shaper(AMP * np.sin(t)) * np.cos(k * t), 0, 2 * np.pi, limit=200)[0]
        im = -scipy.integrate.quad(lambda t: shaper(AMP * np.sin(t)) * np.sin(k * t), 0, 2 * np.pi, limit=200)[0]
        assert abs(c[k] - (re + 1j * im) / (2 * np.pi)) < 1e-10
    return c


def naive_response(f0_hz: float, n_warmup: int = 500, n_seconds: float = 0.5, kind: str = "prime"):
    """(y window Tensor[1 x N], m, N): the shaper on a snapped tone, after a (memoryless) warm-up."""
    n = tones.analysis_length(FS, n_seconds, kind)
    m, f0, _ = tones.snap_f0(torch.tensor([f0_hz]), FS, n)
    # start the window at phase PHASE: shift the start phase back by the warm-up
    start = PHASE - 2 * np.pi * float(f0) * n_warmup / FS
    x = tones.sine_batch(f0, AMP, start, FS, n_warmup, n)
    return torch.from_numpy(shaper(x.numpy()))[:, n_warmup:], m, n


@pytest.mark.parametrize("kind", ["prime", "pow2"])
@pytest.mark.parametrize("f0_hz", [100.0, 1245.0, 4186.0, 9000.0, 15000.0])
def test_bandlimit_matches_the_true_harmonics(coef, f0_hz, kind):
    y, m, n = naive_response(f0_hz, kind=kind)
    assert (n == 22039) if kind == "prime" else (n == 16384 and int(m) % 2 == 1)
    truth = true_bandlimited(int(m), n, coef)
    ours = bandlimit(y, m)[0].numpy()
    esr = np.sum((ours - truth) ** 2) / np.sum(truth ** 2)
    assert 10 * np.log10(esr) < -100
    # The aliasing that was removed is real and large at high f0 (the test is not vacuous) ...
    alias = np.sum((y[0].numpy() - truth) ** 2) / np.sum(truth ** 2)
    if f0_hz >= 4000:
        assert 10 * np.log10(alias) > -40
    # ... and nothing is left on non-harmonic bins.
    spec = np.abs(np.fft.rfft(ours)) ** 2
    k = np.arange(len(spec))
    assert spec[k % int(m) != 0].sum() / spec.sum() < 1e-12


@pytest.mark.parametrize("kind", ["prime", "pow2"])
@pytest.mark.parametrize("f0_hz", [220.0, 2500.0, 9000.0])
def test_harmonic_magnitudes_match_the_true_amplitudes(coef, f0_hz, kind):
    y, m, n = naive_response(f0_hz, kind=kind)
    mag, valid = harmonic_magnitudes(y, m, 40)
    k = np.arange(1, 41)
    expected_valid = k * int(m) < n / 2
    np.testing.assert_array_equal(valid[0].numpy(), expected_valid)
    truth = np.where(expected_valid, 2 * np.abs(coef[1:41]), 0.0)
    err = np.sum((mag[0].numpy() - truth) ** 2) / np.sum(truth ** 2)
    assert 10 * np.log10(err) < -100
    assert (mag[0].numpy()[~expected_valid] == 0).all()


def windowed_ls_fit(y: np.ndarray, m: int, window: np.ndarray) -> np.ndarray:
    """Weighted least-squares fit of DC + cos/sin at every harmonic below Nyquist, resynthesised."""
    n = len(y)
    t = np.arange(n)
    cols = [np.ones(n)]
    for k in range(1, (n - 1) // (2 * m) + 1):
        cols += [np.cos(2 * np.pi * k * m * t / n), np.sin(2 * np.pi * k * m * t / n)]
    a = np.stack(cols, 1)
    sw = np.sqrt(window)
    c, *_ = np.linalg.lstsq(a * sw[:, None], y * sw, rcond=None)
    return a @ c


def test_windowed_least_squares_fit_agrees():
    y, m, n = naive_response(3000.0, n_seconds=0.25)
    ours = bandlimit(y, m)[0].numpy()
    cheb = scipy.signal.windows.chebwin(n, at=120, sym=False)    # the reference's window
    ls = windowed_ls_fit(y[0].numpy(), int(m), cheb)
    assert 10 * np.log10(np.sum((y[0].numpy() - ours) ** 2) / np.sum(ours ** 2)) > -40   # real aliasing
    assert 10 * np.log10(np.sum((ls - ours) ** 2) / np.sum(ours ** 2)) < -120


def test_split_is_exact_and_bandlimit_is_a_projection():
    torch.manual_seed(0)
    n = 1009
    y = torch.randn(3, n, dtype=torch.float64)
    m = torch.tensor([1, 7, 250])
    h, a = split_harmonics(y, m)
    np.testing.assert_allclose((h + a).numpy(), y.numpy(), rtol=0, atol=1e-14)
    np.testing.assert_allclose(bandlimit(h, m).numpy(), h.numpy(), rtol=0, atol=1e-13)
    assert bandlimit(a, m).abs().max() < 1e-13
    # batched with different m equals one call per item
    for i in range(3):
        np.testing.assert_allclose(bandlimit(y[i:i + 1], m[i:i + 1]).numpy(), h[i:i + 1].numpy(), rtol=0, atol=1e-14)
    assert torch.equal(bandlimit(y, m[1:2].expand(3)), bandlimit(y, torch.tensor([7, 7, 7])))


def test_harmonic_mask_against_a_loop():
    m = torch.tensor([1, 3, 10])
    n = 61
    mask = harmonic_mask(m, n)
    assert mask.shape == (3, 31)
    for i, mi in enumerate(m.tolist()):
        assert mask[i].tolist() == [k % mi == 0 for k in range(31)]


def test_bandlimit_is_differentiable():
    y = torch.randn(2, 31, dtype=torch.float64, requires_grad=True)
    m = torch.tensor([2, 5])
    assert torch.autograd.gradcheck(lambda v: bandlimit(v, m), (y,))
    assert torch.autograd.gradcheck(lambda v: harmonic_magnitudes(v, m, 4)[0], (y,))


def test_bandlimit_float32_and_bad_input():
    y = torch.randn(2, 101)
    out = bandlimit(y, torch.tensor([3, 4]))
    assert out.dtype == torch.float32 and out.shape == y.shape
    with pytest.raises(AaexpError):
        bandlimit(y, torch.tensor([3]))                  # one m for two signals
    with pytest.raises(AaexpError):
        bandlimit(y, torch.tensor([3, 51]))              # m ≥ N/2
