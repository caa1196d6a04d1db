"""RBJ biquads against scipy's own filter design (iirpeak, bilinear transform of the analog shelves)."""

import numpy as np
import pytest
from scipy import signal

from aaexp.eq.biquad import rbj_biquad, response_db, setting_sos

FS = 48000.0
FREQS = np.array([20.0, 63.0, 200.0, 500.0, 1000.0, 2500.0, 6000.0, 12000.0, 20000.0])


def _peaking_reference(f0, gain_db, q, fs, freqs):
    """RBJ peaking = 1 + (A^2 - 1) * BP, BP a unit-peak band-pass with alpha' = alpha / A, which is
    scipy's iirpeak with tan(w0 / (2 Q')) = alpha'. Returns the complex response at `freqs`."""
    A = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / fs
    alpha_p = np.sin(w0) / (2 * q) / A
    q_scipy = w0 / (2 * np.arctan(alpha_p))
    b, a = signal.iirpeak(f0, q_scipy, fs=fs)
    _, bp = signal.freqz(b, a, worN=freqs, fs=fs)
    return 1 + (A**2 - 1) * bp


def _shelf_reference(kind, f0, gain_db, q, fs, freqs):
    """The cookbook's analog shelf prototypes, corner prewarped to f0, through scipy.signal.bilinear."""
    A = 10 ** (gain_db / 40)
    W = 2 * fs * np.tan(np.pi * f0 / fs)  # prewarped corner (rad/s)
    k = np.sqrt(A) / q
    if kind == "low_shelf":   # A (s^2 + k s + A) / (A s^2 + k s + 1), s normalised by W
        b, a = A * np.array([1 / W**2, k / W, A]), np.array([A / W**2, k / W, 1])
    else:                     # A (A s^2 + k s + 1) / (s^2 + k s + A)
        b, a = A * np.array([A / W**2, k / W, 1]), np.array([1 / W**2, k / W, A])
    bz, az = signal.bilinear(b, a, fs=fs)
    return signal.freqz(bz, az, worN=freqs, fs=fs)[1]


def _mag(sec, freqs, fs=FS):
    return np.abs(signal.freqz(sec[:3], sec[3:], worN=freqs, fs=fs)[1])


@pytest.mark.parametrize("f0, gain_db, q", [(1000.0, 6.0, 0.71), (250.0, -9.0, 2.5), (4000.0, 12.0, 0.3), (8000.0, -3.0, 8.0)])
def test_peaking_matches_scipy_iirpeak(f0, gain_db, q):
    sec = rbj_biquad("peaking", f0, gain_db, q, FS)
    ref = _peaking_reference(f0, gain_db, q, FS, FREQS)
    np.testing.assert_allclose(_mag(sec, FREQS), np.abs(ref), rtol=1e-9)
    # closed form: the full gain at the centre frequency
    assert 20 * np.log10(_mag(sec, [f0])[0]) == pytest.approx(gain_db, abs=1e-9)


@pytest.mark.parametrize("kind", ["low_shelf", "high_shelf"])
@pytest.mark.parametrize("f0, gain_db", [(100.0, 6.0), (800.0, -12.0), (5000.0, 9.0), (12000.0, -4.0)])
def test_shelves_match_the_bilinear_analog_prototype(kind, f0, gain_db):
    sec = rbj_biquad(kind, f0, gain_db, 0.71, FS)
    ref = _shelf_reference(kind, f0, gain_db, 0.71, FS, FREQS)
    np.testing.assert_allclose(_mag(sec, FREQS), np.abs(ref), rtol=1e-8)
    # closed forms: full gain on the shelf side (DC or Nyquist), 0 dB on the other, half the dB at f0
    dc, nyq = 20 * np.log10(_mag(sec, [0.0, FS / 2]))
    shelf, flat = (dc, nyq) if kind == "low_shelf" else (nyq, dc)
    assert shelf == pytest.approx(gain_db, abs=1e-9) and flat == pytest.approx(0.0, abs=1e-9)
    assert 20 * np.log10(_mag(sec, [f0])[0]) == pytest.approx(gain_db / 2, abs=1e-9)


def test_five_band_setting_is_the_product_of_its_sections():
    p = np.array([4.0, 120.0, -3.0, 400.0, 1.2, 2.0, 1500.0, 0.7, 5.0, 4000.0, 3.0, -6.0, 9000.0])
    got, clipped = response_db(p, FREQS, FS, shelf_q=0.71)
    ref = (_shelf_reference("low_shelf", 120.0, 4.0, 0.71, FS, FREQS)
           * _peaking_reference(400.0, -3.0, 1.2, FS, FREQS)
           * _peaking_reference(1500.0, 2.0, 0.7, FS, FREQS)
           * _peaking_reference(4000.0, 5.0, 3.0, FS, FREQS)
           * _shelf_reference("high_shelf", 9000.0, -6.0, 0.71, FS, FREQS))
    np.testing.assert_allclose(got, 20 * np.log10(np.abs(ref)), atol=1e-8)
    assert not clipped


def test_flat_setting_is_0_db_and_impossible_frequencies_are_flagged():
    p = np.array([0.0, 100.0, 0.0, 400.0, 1.0, 0.0, 1000.0, 1.0, 0.0, 3000.0, 1.0, 0.0, 8000.0])
    r, clipped = response_db(p, FREQS, FS, 0.71)
    np.testing.assert_allclose(r, 0.0, atol=1e-9)
    assert not clipped
    p[12] = 1.6e6  # V1's band-5 frequency: above Nyquist, drawn clipped and flagged
    sos, clipped = setting_sos(p, FS, 0.71)
    assert clipped and np.isfinite(sos).all()
