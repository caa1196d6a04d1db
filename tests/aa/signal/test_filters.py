"""Pre-emphasis filters: the torch modules against scipy's lfilter/freqz and closed forms."""

import math

import numpy as np
import pytest
import scipy.signal
import torch
from omegaconf import OmegaConf

from aaexp.aa.signal.filters import a_weighting_zpk
from aaexp.aa.signal.filters import make_prefilter as _make
from aaexp.core.config import CONF_DIR
from aaexp.core.errors import AaexpError

KINDS = ["lp", "aw", "hp", "fd"]
# The configured parameters: the filters have no defaults of their own.
CONFIGURED = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "loss" / "aa.yaml").pre_emphasis)


def make_prefilter(kind, fs, **params):
    return _make(kind, fs, **{**(CONFIGURED.get(kind) or {}), **params})


def a_weighting_db(f: np.ndarray) -> np.ndarray:
    """IEC 61672-1 closed form of the A-weighting curve, 0 dB at 1 kHz."""
    f1, f2, f3, f4 = 20.598997, 107.65265, 737.86223, 12194.217

    def ra(x):
        return f4 ** 2 * x ** 4 / ((x ** 2 + f1 ** 2) * np.sqrt((x ** 2 + f2 ** 2) * (x ** 2 + f3 ** 2)) * (x ** 2 + f4 ** 2))
    return 20 * np.log10(ra(f) / ra(1000.0))


@pytest.mark.parametrize("fs", [44100, 48000])
@pytest.mark.parametrize("kind", KINDS)
def test_module_equals_scipy_lfilter(kind, fs):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2000))
    filt = make_prefilter(kind, fs)
    y = filt(torch.from_numpy(x)).numpy()
    taps = filt.taps.numpy()
    np.testing.assert_allclose(y, scipy.signal.lfilter(taps, [1.0], x, axis=-1), atol=1e-12)
    assert filt.history == len(taps) - 1


@pytest.mark.parametrize("kind", KINDS)
def test_module_is_causal_and_keeps_dtype(kind):
    filt = make_prefilter(kind, 44100)
    x = torch.zeros(2, 400, dtype=torch.float32)
    x[:, 200] = 1.0
    y = filt(x)
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert y[:, :200].abs().max() < 1e-6                     # nothing before the impulse (FFT round-off)
    np.testing.assert_allclose(y[0, 200:200 + len(filt.taps)].numpy(), filt.taps.numpy(), atol=1e-7)
    assert make_prefilter(kind, 44100)(x[0]).shape == (400,)  # Tensor[T] works too


@pytest.mark.parametrize("fs", [44100, 48000, 96000])
def test_lowpass_meets_its_design(fs):
    filt = make_prefilter("lp", fs)
    taps = filt.taps.numpy()
    # Kaiser's length estimate for 80 dB and a 4 kHz transition, rounded up to odd (type I).
    n = math.ceil((80 - 7.95) / (14.36 * 4000 / fs))
    assert len(taps) == n + 1 + n % 2
    np.testing.assert_allclose(taps, taps[::-1], atol=0)     # linear phase
    f, h = scipy.signal.freqz(taps, worN=16384, fs=fs)
    db = 20 * np.log10(np.abs(h) + 1e-300)
    assert np.abs(db[f <= 12000]).max() < 0.01               # pass band flat
    assert db[f >= 16000].max() < -78.5                      # stop band ≈ 80 dB (Kaiser estimate)
    assert filt.delay == (len(taps) - 1) / 2


def test_lowpass_edges_are_configurable():
    filt = make_prefilter("lp", 44100, passband_hz=5000, stopband_hz=6000, attenuation_db=60)
    f, h = scipy.signal.freqz(filt.taps.numpy(), worN=16384, fs=44100)
    db = 20 * np.log10(np.abs(h) + 1e-300)
    assert np.abs(db[f <= 5000]).max() < 0.02 and db[f >= 6000].max() < -58.5


@pytest.mark.parametrize("fs", [44100, 48000])
def test_a_weighting_design(fs):
    # the digital prototype follows the IEC curve where the bilinear warping is negligible
    f = np.geomspace(31.5, 2000, 40)
    _, hd = scipy.signal.freqz_zpk(*a_weighting_zpk(fs), worN=f, fs=fs)
    np.testing.assert_allclose(20 * np.log10(np.abs(hd)), a_weighting_db(f), atol=0.01)
    # the 101-tap least-squares FIR fit (auraloss / DAFx25 design) tracks it from 1 to 15 kHz
    filt = make_prefilter("aw", fs)
    taps = filt.taps.numpy()
    assert len(taps) == 101
    np.testing.assert_allclose(taps, taps[::-1], atol=1e-12)
    f = np.geomspace(1000, 15000, 40)
    _, h = scipy.signal.freqz(taps, worN=f, fs=fs)
    _, hd = scipy.signal.freqz_zpk(*a_weighting_zpk(fs), worN=f, fs=fs)
    assert np.abs(20 * np.log10(np.abs(h) / np.abs(hd))).max() < 0.5
    _, h1k = scipy.signal.freqz(taps, worN=[1000.0], fs=fs)
    assert abs(20 * np.log10(abs(h1k[0]))) < 0.2


@pytest.mark.parametrize("kind,lag", [("hp", 1), ("fd", 2)])
def test_first_order_emphasis_closed_form(kind, lag):
    coef = 0.85
    filt = make_prefilter(kind, 44100, coef=coef)
    w = np.linspace(0, np.pi, 257)
    _, h = scipy.signal.freqz(filt.taps.numpy(), worN=w)
    np.testing.assert_allclose(np.abs(h), np.abs(1 - coef * np.exp(-1j * lag * w)), atol=1e-12)


def test_none_is_identity_and_errors_are_one_line():
    x = torch.randn(2, 50, dtype=torch.float64)
    assert torch.equal(make_prefilter("none", 44100)(x), x)
    for kind, params in [("bogus", {}), ("lp", {"cutoff": 1.0}), ("lp", {"stopband_hz": 30000}),
                         ("aw", {"ntaps": 100}), ("none", {"coef": 0.5})]:
        with pytest.raises(AaexpError) as err:
            make_prefilter(kind, 44100, **params)
        assert "\n" not in str(err.value)


def test_a_missing_parameter_is_named_not_defaulted():
    for kind in ("lp", "aw", "hp"):
        with pytest.raises(AaexpError, match=f"pre-emphasis {kind}: missing parameter") as err:
            _make(kind, 44100)
        assert "\n" not in str(err.value)
