"""λ → weights, the curriculum, and the combined loss against NumPy/scipy computations."""

import math

import numpy as np
import pytest
import scipy.signal
import torch
from omegaconf import OmegaConf

from aaexp.aa.loss.mix import AALoss, lambda_at, lambda_weights, term_weights
from aaexp.aa.loss.nmr import NMRLoss
from aaexp.core.config import compose
from aaexp.core.errors import AaexpError

# The table: λ → (esr_normal, nmr), three decimals.
TABLE = {0.1: (0.909, 0.091), 0.3: (0.769, 0.231), 0.5: (0.667, 0.333), 1.0: (0.5, 0.5), 3.0: (0.25, 0.75)}


@pytest.fixture(scope="module")
def loss_cfg():
    # A plain copy (not struct): tests add keys that Hydra's composed config would refuse.
    return OmegaConf.create(OmegaConf.to_container(compose(["trainer=quick"]).loss))


@pytest.mark.parametrize("lam", sorted(TABLE))
def test_lambda_table(lam, loss_cfg):
    w = lambda_weights(lam)
    assert (round(w["esr_normal"], 3), round(w["nmr"], 3)) == TABLE[lam]
    cfg = OmegaConf.merge(loss_cfg, {"lam": lam})
    full = term_weights(cfg, lambda_at(cfg, 0, 40))
    assert full["esr_normal"] == pytest.approx(1 / (1 + lam)) and full["nmr"] == pytest.approx(lam / (1 + lam))
    assert full["dc"] == 1.0 and full["harmonic"] == 0.0


def test_curriculum_epochs_0_20_40(loss_cfg):
    cfg = OmegaConf.merge(loss_cfg, {"schedule": "curriculum", "lam_start": 3.0, "lam_end": 0.3})
    got = [lambda_at(cfg, e, 40) for e in (0, 20, 40)]
    assert [round(v, 3) for v in got] == [3.0, 0.949, 0.3]
    assert got[1] == pytest.approx(math.sqrt(3.0 * 0.3))  # geometric midpoint


def test_explicit_weights_and_conflicts(loss_cfg):
    explicit = OmegaConf.merge(loss_cfg, {"lam": None, "weights": {"esr_normal": 0.8, "nmr": 0.2, "asr": 0.1}})
    w = term_weights(explicit, lambda_at(explicit, 0, 10))
    assert (w["esr_normal"], w["nmr"], w["asr"], w["dc"]) == (0.8, 0.2, 0.1, 1.0)
    both = OmegaConf.merge(loss_cfg, {"lam": 0.3, "weights": {"nmr": 0.2}})
    with pytest.raises(AaexpError, match="loss.lam=null"):
        term_weights(both, 0.3)
    with pytest.raises(AaexpError, match="explicitly"):
        term_weights(OmegaConf.merge(loss_cfg, {"lam": None}), None)
    with pytest.raises(AaexpError, match="unknown term"):
        term_weights(OmegaConf.merge(loss_cfg, {"weights": {"spectral": 1.0}}), 1.0)
    with pytest.raises(AaexpError, match="λ must be"):
        lambda_weights(-1.0)


def _periodic_batch(n: int, ms, rng) -> np.ndarray:
    t = np.arange(n)
    return np.stack([sum(rng.uniform(0.05, 0.4) * np.cos(2 * np.pi * k * m * t / n + rng.uniform(0, 6))
                         for k in range(1, 6) if 2 * k * m < n) + 0.02 for m in ms])


def test_loss_matches_numpy_with_circular_prefilter(loss_cfg):
    """Pre-emphasis with `history` samples in front equals filtering the endless periodic signals."""
    fs, n = 44100.0, 4099  # prime
    rng = np.random.default_rng(0)
    ms = [13, 101, 700]
    target = _periodic_batch(n, ms, rng)
    student = target + 0.01 * rng.standard_normal(target.shape) + 0.003
    mix = AALoss(loss_cfg, fs)
    h = mix.history
    assert h > 0
    taps = mix.prefilter.taps.numpy()
    # Independent: filter three periods of each signal with scipy, keep the last period.
    t_f = scipy.signal.lfilter(taps, 1.0, np.tile(target, 3), axis=-1)[:, -n:]
    y_f = scipy.signal.lfilter(taps, 1.0, np.tile(student, 3), axis=-1)[:, -n:]
    esr = np.sum((t_f - y_f) ** 2) / np.sum(t_f ** 2)
    dc = np.sum(np.mean(t_f - y_f, axis=-1) ** 2) / np.sum(np.mean(t_f ** 2, axis=-1))
    nmr_db = NMRLoss(fs, reduction="none")(torch.tensor(y_f), torch.tensor(t_f)).numpy()

    ext = lambda x: torch.tensor(np.concatenate([x[:, n - h:], x], axis=-1))  # noqa: E731
    weights = {"esr_normal": 0.25, "nmr": 0.75, "dc": 1.0}
    total, terms = mix(ext(student), ext(target), torch.tensor(ms), weights)
    assert float(terms["esr_normal"]) == pytest.approx(0.25 * esr, rel=1e-9)
    assert float(terms["dc"]) == pytest.approx(dc, rel=1e-6)
    assert float(terms["nmr"]) == pytest.approx(0.75 * 10 ** (np.mean(nmr_db) / 10), rel=1e-9)
    assert float(total) == pytest.approx(sum(float(v) for v in terms.values()), rel=1e-12)
    assert set(terms) == set(weights)  # zero-weight terms are not computed


def test_whole_window_terms(loss_cfg):
    """esr compares BL(student) with the target; asr reads the student's non-harmonic bins."""
    fs, n = 44100.0, 2003
    rng = np.random.default_rng(1)
    ms = [17, 90]
    target = _periodic_batch(n, ms, rng)
    alias = 0.01 * np.cos(2 * np.pi * (np.array(ms)[:, None] + 3) * np.arange(n) / n)
    student = 1.02 * target + alias
    cfg = OmegaConf.merge(loss_cfg, {"pre_emphasis": {"kind": "none"}})
    mix = AALoss(cfg, fs)
    assert mix.history == 0
    _, terms = mix(torch.tensor(student), torch.tensor(target), torch.tensor(ms), {"esr": 1.0, "asr": 1.0})
    esr = np.sum((1.02 * target - target) ** 2) / np.sum(target ** 2)
    asr = np.sum(alias ** 2) / np.sum((1.02 * target) ** 2)
    assert float(terms["esr"]) == pytest.approx(esr, rel=1e-9)
    assert float(terms["asr"]) == pytest.approx(asr, rel=1e-9)


def test_all_zero_weights_refused(loss_cfg):
    mix = AALoss(loss_cfg, 44100.0)
    x = torch.zeros(1, 4096 + mix.history, dtype=torch.float64)
    with pytest.raises(AaexpError, match="nothing to train"):
        mix(x, x, torch.tensor([3]), {"esr_normal": 0.0})
