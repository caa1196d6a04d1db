"""Periodic test tones: prime windows, f0 snapping, sine synthesis, MIDI conversion."""

import math

import numpy as np
import pytest
import torch

from aaexp.aa.signal import tones
from aaexp.core.errors import AaexpError


def sieve(limit: int) -> np.ndarray:
    """Boolean array is_prime[0..limit] by the sieve of Eratosthenes."""
    is_prime = np.ones(limit + 1, dtype=bool)
    is_prime[:2] = False
    for p in range(2, int(limit ** 0.5) + 1):
        if is_prime[p]:
            is_prime[p * p::p] = False
    return is_prime


@pytest.mark.parametrize("fs,seconds", [(44100, 1.0), (48000, 1.0), (44100, 0.5), (96000, 1.05), (22050, 0.01)])
def test_analysis_length_is_the_largest_prime_not_above_the_target(fs, seconds):
    target = round(fs * seconds)
    primes = sieve(target)
    n = tones.analysis_length(fs, seconds)
    assert primes[n] and n <= target
    assert not primes[n + 1:target + 1].any()


def test_analysis_length_known_value_and_bad_input():
    assert tones.analysis_length(44100, 1.0) == 44089      # 44089 is prime; 44090..44100 are not
    with pytest.raises(AaexpError):
        tones.analysis_length(44100, 0.00001)


def test_snap_f0_picks_the_nearest_periodic_frequency():
    fs, n = 44100, tones.analysis_length(44100, 1.0)
    f0 = torch.tensor([27.5, 100.3, 440.0, 1000.0, 4186.01, 12000.0, 19999.7], dtype=torch.float64)
    m, snapped, cents = tones.snap_f0(f0, fs, n)
    grid = np.arange(1, (n - 1) // 2 + 1) * fs / n
    for i, f in enumerate(f0.numpy()):
        best = int(np.argmin(np.abs(grid - f))) + 1         # brute force over every allowed m
        assert int(m[i]) == best
        assert float(snapped[i]) == pytest.approx(best * fs / n, rel=1e-15)
        assert float(cents[i]) == pytest.approx(1200 * np.log2(best * fs / n / f), abs=1e-9)
        assert abs(best * fs / n - f) <= fs / (2 * n) + 1e-9


@pytest.mark.parametrize("fs,seconds", [(44100, 1.0), (48000, 0.1), (22050, 0.01)])
def test_pow2_analysis_length_is_the_largest_power_of_two_not_above_the_target(fs, seconds):
    target = round(fs * seconds)
    n = tones.analysis_length(fs, seconds, "pow2")
    assert n <= target < 2 * n and n & (n - 1) == 0
    with pytest.raises(AaexpError, match="window kind"):
        tones.analysis_length(fs, seconds, "odd")


@pytest.mark.parametrize("n", [32768, 1000, 4096])
def test_snap_f0_on_a_composite_window_picks_the_nearest_coprime_bin(n):
    fs = 44100
    f0 = torch.logspace(np.log10(20.0), np.log10(20000.0), 997, dtype=torch.float64)
    m, snapped, _ = tones.snap_f0(f0, fs, n)
    allowed = np.array([v for v in range(1, (n - 1) // 2 + 1) if np.gcd(v, n) == 1])   # brute force
    for i, f in enumerate(f0.numpy()):
        dist = np.abs(allowed * fs / n - f)
        assert abs(float(snapped[i]) - f) == pytest.approx(dist.min(), abs=1e-9)
        assert np.gcd(int(m[i]), n) == 1
    if n != 1000:          # powers of two: odd bins, so at most one bin away ...
        assert float((snapped - f0).abs().max()) <= fs / n + 1e-9
        bound = tones.max_snap_cents(fs, n, 27.5)     # ... and the bound is one bin down from f_min
        assert bound == pytest.approx(-1200 * np.log2(1 - fs / n / 27.5), rel=1e-12)
        _, _, cents = tones.snap_f0(f0[f0 >= 27.5], fs, n)
        assert float(cents.abs().max()) <= bound + 1e-9


def test_snap_f0_clamps_to_the_valid_bins():
    fs, n = 44100, 101
    m, _, _ = tones.snap_f0(torch.tensor([1.0, 22000.0]), fs, n)
    assert m.tolist() == [1, 50]                            # m ≥ 1 and m < n/2
    with pytest.raises(AaexpError):
        tones.snap_f0(torch.tensor([0.0]), fs, n)


def test_max_snap_cents_bounds_a_dense_sweep():
    fs, n, f_min = 44100, tones.analysis_length(44100, 1.0), 27.5
    f0 = torch.logspace(math.log10(f_min), math.log10(20000.0), 20001, dtype=torch.float64)
    _, _, cents = tones.snap_f0(f0, fs, n)
    bound = tones.max_snap_cents(fs, n, f_min)
    worst = float(cents.abs().max())
    assert worst <= bound + 1e-9
    assert worst > 0.95 * bound                             # the bound is tight near f_min
    # half a bin below 27.5 Hz: −1200·log2(1 − 0.5·fs/n / 27.5) ≈ 31.3 cents
    assert bound == pytest.approx(-1200 * np.log2(1 - 0.5 * fs / n / f_min), rel=1e-12)


def test_sine_batch_matches_numpy_and_is_periodic_in_the_window():
    fs, n_warm, n = 44100, 1000, tones.analysis_length(44100, 0.25)
    m, f0, _ = tones.snap_f0(torch.tensor([55.0, 1234.5, 15000.0]), fs, n)
    amp = torch.tensor([1.0, 0.1, 0.5], dtype=torch.float64)
    phase = torch.tensor([0.0, 1.0, -2.0], dtype=torch.float64)
    x = tones.sine_batch(f0, amp, phase, fs, n_warm, n)
    assert x.shape == (3, n_warm + n) and x.dtype == torch.float64
    t = np.arange(n_warm + n) / fs
    ref = amp.numpy()[:, None] * np.sin(2 * np.pi * f0.numpy()[:, None] * t + phase.numpy()[:, None])
    np.testing.assert_allclose(x.numpy(), ref, atol=1e-10)
    spec = np.abs(np.fft.rfft(x[:, n_warm:].numpy(), axis=-1)) ** 2
    for i in range(3):
        other = np.delete(spec[i], int(m[i])).sum()
        assert other / spec[i, int(m[i])] < 1e-24               # everything on bin m: < −240 dB


def test_sine_batch_float32_and_scalar_broadcast():
    x = tones.sine_batch(torch.tensor([440.0, 880.0]), 0.5, 0.0, 48000, 10, 20, dtype=torch.float32)
    assert x.dtype == torch.float32 and x.shape == (2, 30)
    expected = 0.5 * np.sin(2 * np.pi * np.array([[440.0], [880.0]]) * np.arange(30) / 48000)
    np.testing.assert_allclose(x.numpy(), expected, atol=1e-7)


def test_midi_conversions():
    assert float(tones.midi_to_hz(69)) == pytest.approx(440.0)
    assert float(tones.midi_to_hz(21)) == pytest.approx(27.5)
    assert float(tones.midi_to_hz(60)) == pytest.approx(261.6255653005986)
    midi = torch.linspace(0, 127, 128, dtype=torch.float64)
    np.testing.assert_allclose(tones.hz_to_midi(tones.midi_to_hz(midi)).numpy(), midi.numpy(), rtol=0, atol=1e-10)


@pytest.mark.parametrize("n", [44089, 32768])
def test_snap_f0_within_a_range_keeps_the_end_tones_inside(n):
    fs, lo, hi = 44100, 27.5, 12000.0
    f0 = torch.tensor([27.5, 27.6, 440.0, 11999.9, 12000.0], dtype=torch.float64)
    m, snapped, _ = tones.snap_f0(f0, fs, n, within=(lo, hi))
    allowed = np.array([v for v in range(1, (n - 1) // 2 + 1) if np.gcd(v, n) == 1]) * fs / n
    allowed = allowed[(allowed >= lo) & (allowed <= hi)]                                # brute force
    for i, f in enumerate(f0.numpy()):
        assert float(snapped[i]) == pytest.approx(allowed[np.argmin(np.abs(allowed - f))], rel=1e-15)
    # without the range the 12 kHz tone may land above it: the range is what keeps it inside
    assert lo <= float(snapped.min()) and float(snapped.max()) <= hi
