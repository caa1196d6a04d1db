"""Losses against NumPy loops written here and against closed forms."""

import numpy as np
import pytest
import scipy.signal
import torch

from aaexp.aa.loss.ratio import ASRLoss, DCLoss, ESRLoss, ESRNormalLoss, MESRLoss, db_to_power, to_db
from aaexp.aa.signal import tones
from aaexp.core.errors import AaexpError

EPS = 1e-8


def loop_ratio(num_fn, den_fn, x, t):
    """Per-item num/(den + eps) with plain Python sums."""
    out = []
    for xi, ti in zip(x, t):
        out.append(num_fn(xi, ti) / (den_fn(xi, ti) + EPS))
    return np.array(out)


def esr_loop(x, t):
    return loop_ratio(lambda a, b: sum((bv - av) ** 2 for av, bv in zip(a, b)),
                      lambda a, b: sum(bv ** 2 for bv in b), x, t)


def dc_loop(x, t):
    def num(a, b):
        return (sum(bv - av for av, bv in zip(a, b)) / len(b)) ** 2
    return loop_ratio(num, lambda a, b: sum(bv ** 2 for bv in b) / len(b), x, t)


def mesr_loop(x, t, at=120.0):
    w = scipy.signal.windows.chebwin(x.shape[-1], at=at, sym=False)
    res = []
    for xi, ti in zip(x, t):
        mx, mt = np.abs(np.fft.rfft(xi * w)), np.abs(np.fft.rfft(ti * w))
        num = sum((a - b) ** 2 for a, b in zip(mx, mt))
        den = sum(b ** 2 for b in mt)
        res.append(num / (den + EPS))
    return np.array(res)


def asr_loop(x, m):
    res = []
    for xi, mi in zip(x, m):
        spec = np.fft.rfft(xi)
        keep = np.array([k % mi == 0 for k in range(len(spec))])
        harm = np.fft.irfft(np.where(keep, spec, 0), n=len(xi))
        res.append(np.sum((xi - harm) ** 2) / (np.sum(harm ** 2) + EPS))
    return np.array(res)


@pytest.fixture
def pair():
    torch.manual_seed(1)
    t = torch.randn(4, 257, dtype=torch.float64) * torch.tensor([[1.0], [0.1], [2.0], [0.5]], dtype=torch.float64)
    x = t + 0.3 * torch.randn_like(t) + 0.05
    return x, t


@pytest.mark.parametrize("cls,loop", [(ESRLoss, esr_loop), (ESRNormalLoss, esr_loop), (DCLoss, dc_loop),
                                      (MESRLoss, mesr_loop)])
def test_losses_match_numpy_loops(pair, cls, loop):
    x, t = pair
    expected = loop(x.numpy(), t.numpy())
    np.testing.assert_allclose(cls(reduction="none")(x, t).numpy(), expected, rtol=1e-10)
    assert float(cls()(x, t)) == pytest.approx(expected.mean(), rel=1e-10)
    assert float(cls(reduction="sum")(x, t)) == pytest.approx(expected.sum(), rel=1e-10)


def test_pooled_reduction_is_the_ratio_of_sums(pair):
    x, t = pair
    xn, tn = x.numpy(), t.numpy()
    pooled = np.sum((tn - xn) ** 2) / (np.sum(tn ** 2) + EPS)
    assert float(ESRLoss(reduction="pooled")(x, t)) == pytest.approx(pooled, rel=1e-12)


def test_closed_forms():
    n = 1000
    t = torch.sin(2 * np.pi * 5 * torch.arange(n, dtype=torch.float64) / n).unsqueeze(0)   # mean square 1/2
    assert float(ESRLoss(eps=0)(0.9 * t, t)) == pytest.approx(0.01, rel=1e-12)
    assert float(DCLoss(eps=0)(t + 0.1, t)) == pytest.approx(0.01 / 0.5, rel=1e-10)
    assert float(DCLoss(eps=0)(0.5 * t, t)) == pytest.approx(0.0, abs=1e-30)                # no DC error
    # one sine on an exact bin: rfft magnitude is n/2·A, so MESR of 0.8·t against t is 0.2²
    assert float(MESRLoss(window="none", eps=0)(0.8 * t, t)) == pytest.approx(0.04, rel=1e-12)


def test_asr_closed_form_and_dc_counts_as_harmonic():
    fs, n = 44100, tones.analysis_length(44100, 0.1)
    m, f0, _ = tones.snap_f0(torch.tensor([1000.0]), fs, n)
    k = torch.arange(n, dtype=torch.float64)
    harmonic = 0.5 + torch.sin(2 * np.pi * int(m) * k / n) + 0.3 * torch.cos(2 * np.pi * 3 * int(m) * k / n)
    h = n // int(m)                                    # a harmonic above Nyquist: folds to bin n − h·m
    assert h * int(m) > n / 2 and (n - h * int(m)) % int(m) != 0
    alias = 0.01 * torch.sin(2 * np.pi * h * int(m) * k / n)
    y = (harmonic + alias).unsqueeze(0)
    expected = (0.01 ** 2 / 2) / (0.5 ** 2 + 1 / 2 + 0.3 ** 2 / 2)
    assert float(ASRLoss(eps=0)(y, m)) == pytest.approx(expected, rel=1e-10)
    assert float(ASRLoss(eps=0)(harmonic.unsqueeze(0), m)) < 1e-25             # DC is not aliasing


def test_asr_matches_numpy_loop():
    torch.manual_seed(2)
    y = torch.randn(3, 211, dtype=torch.float64)
    m = torch.tensor([2, 4, 30])
    np.testing.assert_allclose(ASRLoss(reduction="none")(y, m).numpy(), asr_loop(y.numpy(), m.numpy()), rtol=1e-10)
    assert float(ASRLoss()(y[:1], torch.tensor([1]))) < 1e-25          # m = 1: every bin is a harmonic


def test_losses_are_differentiable(pair):
    x, t = pair
    x = x[:2, :24].clone().requires_grad_()
    t = t[:2, :24]
    for loss in (ESRLoss(), DCLoss(), MESRLoss(), ESRLoss(reduction="pooled")):
        assert torch.autograd.gradcheck(lambda v: loss(v, t), (x,), fast_mode=True)
    y = torch.randn(2, 29, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: ASRLoss()(v, torch.tensor([3, 5])), (y,), fast_mode=True)


def test_to_db_and_back():
    x = torch.tensor([1.0, 1e-3, 0.0, 1e-15], dtype=torch.float64, requires_grad=True)
    db = to_db(x)
    np.testing.assert_allclose(db.detach().numpy(), [0.0, -30.0, -120.0, -120.0], atol=1e-12)
    db.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert float(to_db(torch.tensor(1e-15), floor_db=None)) == pytest.approx(-150.0)
    assert float(to_db(torch.tensor(1e-7), floor_db=-60.0)) == pytest.approx(-60.0)
    np.testing.assert_allclose(db_to_power(to_db(torch.tensor([0.5, 2.0]))).numpy(), [0.5, 2.0], rtol=1e-6)


def test_bad_input():
    with pytest.raises(AaexpError):
        ESRLoss(reduction="median")
    with pytest.raises(AaexpError):
        ESRLoss()(torch.zeros(2, 10), torch.zeros(2, 11))
    with pytest.raises(AaexpError):
        MESRLoss(window="hann")
