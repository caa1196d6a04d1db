"""The training loop: it learns, it logs, and a resumed run ends where an uninterrupted one does."""

import logging
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from aaexp.core.config import compose
from aaexp.core.errors import TrainingDiverged
from aaexp.eq import model as eq_model
from aaexp.eq.params import PluginRanges
from aaexp.eq.train import CHECKPOINT, Tensors, train


class _Tracker:
    def __init__(self, fail_at_step=None):
        self.rows, self.fail_at_step = [], fail_at_step

    def log_metrics(self, m, step=None):
        if step == self.fail_at_step:
            raise KeyboardInterrupt("simulated kill")
        self.rows.append((step, dict(m)))


def _ctx(tmp_path, tracker, cfg, max_epochs, checkpoint_every, resumed=False):
    cfg = OmegaConf.merge(cfg, {"trainer": {"max_epochs": max_epochs, "checkpoint_every": checkpoint_every}})
    return SimpleNamespace(cfg=cfg, out_dir=tmp_path, device=torch.device("cpu"), progress=False, resumed=resumed,
                           log=logging.getLogger("test"), tracker=tracker)


def _setup(seed=0):
    cfg = compose(["+experiment=eq_v2", "model.hidden=[16]", "model.latent_dim=4", "model.embed_dim=8", "trainer.batch_size=8"])
    ranges = PluginRanges.from_cfg(cfg.data.plugin)
    torch.manual_seed(seed)
    model = eq_model.build(cfg.model, ranges)
    g = torch.Generator().manual_seed(1)
    y = torch.arange(40) % 2
    x = torch.rand(40, 13, generator=g) * 0.2 + 0.4 + 0.3 * y[:, None]  # two separable clusters in [0, 1]
    return model, Tensors(x[:32], y[:32], x[32:], y[32:]), cfg, cfg.loss


def test_learns_and_logs(tmp_path):
    model, data, cfg, loss = _setup()
    tr = _Tracker()
    res = train(_ctx(tmp_path, tr, cfg, 20, 10), model, data, loss)
    first, last = tr.rows[0][1], tr.rows[-1][1]
    assert [s for s, _ in tr.rows] == list(range(1, 21))
    assert last["train/recon"] < 0.5 * first["train/recon"]
    assert first["train/contrastive_weight"] == pytest.approx(0.1) and last["train/contrastive_weight"] == pytest.approx(0.5)
    assert {"val/recon", "val/contrastive", "train/lr"} <= set(last)
    assert res.history["train/recon"][-1] == last["train/recon"]
    assert (tmp_path / CHECKPOINT).is_file() and not model.training


def test_resume_continues_exactly(tmp_path):
    model, data, cfg, loss = _setup()
    torch.manual_seed(5)
    (tmp_path / "a").mkdir()
    train(_ctx(tmp_path / "a", _Tracker(), cfg, 6, 2), model, data, loss)
    whole = {k: v.clone() for k, v in model.state_dict().items()}

    model2, *_ = _setup()
    torch.manual_seed(5)
    (tmp_path / "b").mkdir()
    with pytest.raises(KeyboardInterrupt):  # killed while logging epoch 5: the epoch-4 checkpoint survives
        train(_ctx(tmp_path / "b", _Tracker(fail_at_step=5), cfg, 6, 2), model2, data, loss)
    model3, *_ = _setup(seed=123)  # a fresh process: different init, RNG restored from the checkpoint
    tr = _Tracker()
    res = train(_ctx(tmp_path / "b", tr, cfg, 6, 2, resumed=True), model3, data, loss)
    assert res.resumed_from == 4 and [s for s, _ in tr.rows] == [5, 6]
    for k, v in model3.state_dict().items():
        torch.testing.assert_close(v, whole[k], rtol=0, atol=0)


def test_divergence_is_reported(tmp_path):
    model, data, cfg, loss = _setup()
    bad = Tensors(data.x_train.clone(), data.y_train, data.x_val, data.y_val)
    bad.x_train[3, 2] = float("nan")
    with pytest.raises(TrainingDiverged, match="diverged"):
        train(_ctx(tmp_path, _Tracker(), cfg, 2, 1), model, bad, loss)
