"""PEAQ noise-to-mask ratio: the vectorised torch NMR against the plain loop version and properties."""

import numpy as np
import pytest
import torch

from aaexp.aa.loss.nmr import NMRLoss
from aaexp.aa.signal import peaq, tones
from aaexp.aa.signal.bandlimit import bandlimit
from aaexp.core.errors import AaexpError
from tests.aa.loss.nmr_loop import nmr_loop


def tone_pairs(fs: int, length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(signal, reference) pairs of the kinds the study meets: NMR-S (y vs BL(y)) and y vs a perturbed y."""
    n = tones.analysis_length(fs, length / fs)
    m, f0, _ = tones.snap_f0(torch.tensor([110.0, 1245.0, 5000.0]), fs, n)
    x = tones.sine_batch(f0, torch.tensor([0.5, 0.1, 0.8]), torch.tensor([0.0, 1.0, 2.0]), fs, 0, n)
    y = torch.tanh(6 * (x + 0.1))
    gen = torch.Generator().manual_seed(seed)
    noisy = y + 1e-3 * torch.randn(y.shape, generator=gen, dtype=y.dtype)
    return torch.cat([y, noisy]), torch.cat([bandlimit(y, m), y])


@pytest.mark.parametrize("fs,bits", [(44100, 64), (48000, 16), (22050, 24)])
def test_matches_the_loop_version(fs, bits):
    sig, ref = tone_pairs(fs, 2048 + 3 * 1024)
    ours = NMRLoss(fs, bits=bits, reduction="none", floor_db=None)(sig, ref).numpy()
    loop = nmr_loop(sig.numpy(), ref.numpy(), fs, bits=bits)
    assert np.abs(ours - loop).max() < 0.01
    assert np.abs(ours - loop).max() < 1e-8          # in fact equal to rounding


def test_matches_the_loop_version_with_uneven_hop():
    sig, ref = tone_pairs(16000, 600, seed=3)
    ours = NMRLoss(16000, n_fft=256, hop=96, reduction="none", floor_db=None)(sig, ref).numpy()
    loop = nmr_loop(sig.numpy(), ref.numpy(), 16000, n_fft=256, hop=96)
    np.testing.assert_allclose(ours, loop, atol=1e-8)


def test_band_table():
    lower, centre, upper = peaq.critical_bands()
    assert len(centre) == 109
    # spot values printed in BS.1387 (first band, last edge, and two of its irregular entries)
    assert (lower[0], centre[0], upper[0], upper[-1]) == (80.0, 91.708, 103.445, 18000.0)
    assert (lower[66], upper[70], centre[100]) == (3853.817, 4643.482, 13294.85)
    # elsewhere the table is 650·sinh(z/7) on a uniform quarter-Bark grid from 80 Hz
    z0 = 7 * np.arcsinh(80 / 650)
    zl = z0 + 0.25 * np.arange(109)
    zu = np.minimum(zl + 0.25, 7 * np.arcsinh(18000 / 650))
    for table, z, irregular in [(lower, zl, [66]), (centre, (zl + zu) / 2, [100]), (upper, zu, [28, 70])]:
        dev = np.abs(table - 650 * np.sinh(z / 7))
        assert np.delete(dev, irregular).max() < 0.003
        assert (dev[irregular] > 0.003).all()


def test_loudness_calibration():
    # A full-scale sine at 1019.5 Hz must peak at 92 dB in the calibrated, Hann-windowed DFT.
    fs, n_fft = 48000, 2048
    gain = peaq.loudness_scale(n_fft, 16, 92.0, 1019.5, fs)
    t = np.arange(n_fft)
    hann = 0.5 * (1 - np.cos(2 * np.pi * t / (n_fft - 1)))
    peak = []
    for phase in np.linspace(0, np.pi, 7):
        frame = 2.0 ** 15 * np.sin(2 * np.pi * 1019.5 * t / fs + phase) * hann * gain
        peak.append(20 * np.log10(np.abs(np.fft.rfft(frame)).max()))
    assert np.abs(np.array(peak) - 92.0).max() < 0.05


def test_signal_against_itself_sits_at_the_floor():
    sig, _ = tone_pairs(44100, 4096)
    raw = NMRLoss(44100, reduction="none", floor_db=None)
    itself = raw(sig, sig)
    assert (itself < -100).all()                            # every band's noise is the e_min floor ...
    tiny = 1e-15 * torch.randn(sig.shape, generator=torch.Generator().manual_seed(1), dtype=sig.dtype)
    assert torch.equal(raw(sig + tiny, sig), itself)        # ... so a deviation below it changes nothing
    np.testing.assert_allclose(itself.numpy(), nmr_loop(sig.numpy(), sig.numpy(), 44100), atol=1e-8)
    clamped = NMRLoss(44100, reduction="none", floor_db=-100.0)(sig, sig)
    assert torch.equal(clamped, torch.full((6,), -100.0, dtype=torch.float64))


def test_scaled_copy_and_doubled_noise_add_6_db():
    # The mask comes from the reference only, and magnitudes are compared: for s = (1 + ε)·r the
    # noise is ε²·|R|², so doubling ε adds exactly 20·log10(2) dB ...
    fs = 44100
    ref, _ = tone_pairs(fs, 8192)
    nmr = NMRLoss(fs, reduction="none")
    delta = nmr(1.02 * ref, ref) - nmr(1.01 * ref, ref)
    np.testing.assert_allclose(delta.numpy(), 20 * np.log10(2), atol=1e-9)
    # ... and so does doubling noise against a silent reference (the mask is the internal noise).
    noise = 1e-3 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(5), dtype=ref.dtype)
    silent = torch.zeros_like(ref)
    delta = nmr(2 * noise, silent) - nmr(noise, silent)
    np.testing.assert_allclose(delta.numpy(), 20 * np.log10(2), atol=1e-9)


def test_masking_calibration_sanity():
    fs, n = 44100, 44100 // 2
    k = torch.arange(n, dtype=torch.float64)
    ref = 0.1 * torch.sin(2 * np.pi * 1000 * k / fs).unsqueeze(0)
    white = torch.randn(1, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    nmr = NMRLoss(fs)
    assert float(nmr(ref + 10 ** (-100 / 20) * white, ref)) < -10    # far below the tone: inaudible
    assert float(nmr(ref + 10 ** (-30 / 20) * white, ref)) > 0       # loud hiss: audible


def test_symmetries_and_batching():
    sig, ref = tone_pairs(44100, 5000)
    nmr = NMRLoss(44100, reduction="none")
    batched = nmr(sig, ref)
    np.testing.assert_allclose(nmr(-sig, -ref).numpy(), batched.numpy(), rtol=0, atol=1e-10)
    for i in range(len(sig)):
        np.testing.assert_allclose(nmr(sig[i:i + 1], ref[i:i + 1]).numpy(), batched[i:i + 1].numpy(), rtol=0, atol=1e-10)
    assert float(NMRLoss(44100)(sig, ref)) == pytest.approx(float(batched.mean()), rel=1e-12)


def test_gradients_full_check_small_frames():
    # Tiny frames keep the numerical Jacobian cheap: a full check w.r.t. the signal on the
    # overlap-add path for a hop that does not divide the frame, a fast one w.r.t. both inputs.
    torch.manual_seed(0)
    s = (0.3 * torch.randn(1, 44, dtype=torch.float64)).requires_grad_()
    r = (0.3 * torch.randn(1, 44, dtype=torch.float64)).requires_grad_()
    uneven = NMRLoss(16000, n_fft=32, hop=12, floor_db=None)
    assert torch.autograd.gradcheck(lambda v: uneven(v, r.detach()), (s,))
    for hop in (16, 12):
        assert torch.autograd.gradcheck(NMRLoss(16000, n_fft=32, hop=hop, floor_db=None), (s, r), fast_mode=True)


def test_gradients_at_full_size():
    # |X| is not differentiable at 0, so finite differences need spectra without near-empty bins:
    # tones plus a little hiss on both sides (a bandlimited reference alone has bins near zero).
    sig, ref = tone_pairs(44100, 2048 + 1024)
    gen = torch.Generator().manual_seed(7)
    s = (sig[2:4] + 1e-2 * torch.randn(2, sig.shape[1], generator=gen, dtype=sig.dtype)).requires_grad_()
    r = (ref[2:4] + 1e-2 * torch.randn(2, sig.shape[1], generator=gen, dtype=sig.dtype)).requires_grad_()
    assert torch.autograd.gradcheck(NMRLoss(44100), (s, r), fast_mode=True)


def test_bad_input():
    nmr = NMRLoss(44100)
    with pytest.raises(AaexpError):
        nmr(torch.zeros(2, 4096), torch.zeros(2, 4000))
    with pytest.raises(AaexpError):
        nmr(torch.zeros(1, 1000), torch.zeros(1, 1000))
    with pytest.raises(AaexpError):
        NMRLoss(44100, reduction="sum")
