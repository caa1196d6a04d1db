"""The training scaffold on a toy task: resume is exact with every RNG a step may draw from, the NaN guard
names its step, checkpoints follow their cadence, and Ctrl-C keeps what a unit kind allows."""

from __future__ import annotations

import logging
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from aaexp.core.errors import AaexpError, TrainingDiverged
from aaexp.training import checkpoint
from aaexp.training.loop import Loop, Task
from tests.hostile import write_hostile


class _Tracker:
    def __init__(self, kill_at=None):
        self.rows, self.kill_at = [], kill_at

    def log_metrics(self, m, step=None):
        if step == self.kill_at:
            raise KeyboardInterrupt
        self.rows.append((step, dict(m)))

    def set_tags(self, tags):
        pass


class _Regression(Task):
    """y = 3x on noisy batches; each step draws from python, numpy, torch and its own generator."""

    def __init__(self, model, opt, nan_at=None):
        self.model, self.opt, self.nan_at = model, opt, nan_at
        self.shuffle = torch.Generator().manual_seed(7)

    def items(self, unit, state):
        return list(torch.randperm(12, generator=self.shuffle).split(4))

    def step(self, idx, state):
        x = torch.linspace(-1, 1, 12)[idx].unsqueeze(1) * (1 + random.random()) + float(np.random.normal(0, 0.1))
        y = 3 * x + 0.01 * torch.randn_like(x)
        loss = (self.model(x) - y).square().mean()
        if self.nan_at is not None and state.step + 1 >= self.nan_at:
            loss = loss * float("nan")
        self.loop.check(loss, {"mse": loss.detach()}, state.epoch + 1, state.step + 1)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        state.step += 1
        return {"loss": loss.detach()}

    def end_unit(self, unit, state, means, started):
        return {"train/loss": means["loss"]}


def _fit(tmp_path, tracker, resumed=False, seed=0, nan_at=None, unit="epoch", units=4, every=1):
    random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    trainer = {"max_epochs": units, "steps": units, "checkpoint_every": every, "log_every_n_steps": 0}
    ctx = SimpleNamespace(cfg=OmegaConf.create({"trainer": trainer}), device=torch.device("cpu"), tracker=tracker,
                          out_dir=tmp_path, progress=False, resumed=resumed, log=logging.getLogger("t"))
    task = _Regression(model, opt, nan_at)
    task.loop = Loop(ctx, model, opt, tmp_path / "last.pt", unit=unit, generators={"shuffle": task.shuffle})
    state, _ = task.loop.fit(task)
    return model, state


def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(tmp_path):
    whole, _ = _fit(tmp_path / "a", _Tracker())
    with pytest.raises(KeyboardInterrupt):           # killed while logging epoch 3, after its checkpoint
        _fit(tmp_path / "b", _Tracker(kill_at=3), every=1)
    assert torch.load(tmp_path / "b" / "last.pt", weights_only=True)["state"]["epoch"] == 3
    tracker = _Tracker()
    resumed, state = _fit(tmp_path / "b", tracker, resumed=True, seed=123)   # another process: other seeds
    assert [s for s, _ in tracker.rows] == [4] and state.step == 12
    for a, b in zip(whole.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_without_the_numpy_and_python_states_the_resume_would_differ(tmp_path, monkeypatch):
    """The test above can fail: restoring torch's state alone (what two studies used to do) changes the weights."""
    whole, _ = _fit(tmp_path / "a", _Tracker())
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "b", _Tracker(kill_at=3))
    restore = checkpoint.restore_rng

    def torch_only(states, generators):
        torch.set_rng_state(states["torch"])
        for k, g in generators.items():
            g.set_state(states["generators"][k])

    monkeypatch.setattr(checkpoint, "restore_rng", torch_only)
    resumed, _ = _fit(tmp_path / "b", _Tracker(), resumed=True, seed=123)
    monkeypatch.setattr(checkpoint, "restore_rng", restore)
    assert not all(torch.equal(a, b) for a, b in zip(whole.parameters(), resumed.parameters()))


def test_the_nan_guard_names_the_step_and_saves_nothing_broken(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2, step 5 \(mse=nan\); last good checkpoint"):
        _fit(tmp_path, _Tracker(), nan_at=5)         # 3 steps per epoch: step 5 is in epoch 2
    assert torch.load(tmp_path / "last.pt", weights_only=True)["state"]["step"] == 3


def test_checkpoints_follow_their_cadence_and_the_last_unit(tmp_path):
    saved = []
    save = checkpoint.save
    checkpoint.save = lambda path, state, *rest: saved.append(state.epoch) or save(path, state, *rest)
    try:
        _fit(tmp_path, _Tracker(), units=7, every=3)
    finally:
        checkpoint.save = save
    assert saved == [3, 6, 7]


def test_ctrl_c_in_a_step_study_keeps_the_finished_steps(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, _Tracker(kill_at=5), unit="step", units=8, every=100)
    blob = torch.load(tmp_path / "last.pt", weights_only=True)
    assert blob["state"]["epoch"] == 5 and blob["state"]["step"] == 5 * 3   # unit 5 finished before its logging


def test_a_checkpoint_in_the_anti_aliasing_studys_former_layout_still_resumes_exactly(tmp_path):
    """Runs interrupted under the version before the shared loop (weights under "student", the shuffle generator
    beside the global RNGs, as aa/train/checkpoint.py wrote them) continue to the same weights."""
    whole, _ = _fit(tmp_path / "a", _Tracker())
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "b", _Tracker(kill_at=3), every=1)
    path = tmp_path / "b" / "last.pt"
    new = torch.load(path, weights_only=True)
    rng = {k: new["rng"][k] for k in ("python", "numpy", "torch")} | {"shuffle": new["rng"]["generators"]["shuffle"]}
    torch.save({"student": new["model"], "optimizer": new["optimizer"], "scheduler": None, "state": new["state"],
                "rng": rng}, path)
    resumed, state = _fit(tmp_path / "b", _Tracker(), resumed=True, seed=123)
    assert state.epoch == 4 and state.step == 12
    for a, b in zip(whole.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_tnca_and_eq_checkpoints_in_their_former_layouts_become_loop_states():
    tnca = checkpoint.upgrade({"model": {}, "optimizer": {}, "iteration": 20, "died_at": None, "torch_rng": torch.get_rng_state(),
                               "history": {"loss/total": [(10, 2.0), (20, 1.5)], "nca/alive_fraction": [(10, 0.5), (20, 0.4)]}})
    assert tnca["state"] == {"epoch": 20, "step": 20, "died_at": None,
                             "history": [{"epoch": 10, "loss/total": 2.0, "nca/alive_fraction": 0.5},
                                         {"epoch": 20, "loss/total": 1.5, "nca/alive_fraction": 0.4}]}
    eq = checkpoint.upgrade({"model": {}, "optimizer": {}, "scheduler": None, "rng": torch.get_rng_state(), "epoch": 2,
                             "history": {"train/loss": [0.9, 0.7], "val/recon": [0.5, 0.4]}})
    assert eq["state"] == {"epoch": 2, "history": [{"epoch": 1, "train/loss": 0.9, "val/recon": 0.5},
                                                   {"epoch": 2, "train/loss": 0.7, "val/recon": 0.4}]}
    assert set(eq["rng"]) == set(tnca["rng"]) == {"torch"}


def test_a_checkpoint_written_before_weights_only_loading_still_resumes_exactly(tmp_path):
    """The previous aaexp stored numpy's RNG state as numpy wrote it (an ndarray key) and the best value as a
    numpy scalar; such a run, interrupted before the upgrade, continues to the same weights."""
    whole, _ = _fit(tmp_path / "a", _Tracker())
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "b", _Tracker(kill_at=3), every=1)
    path = tmp_path / "b" / "last.pt"
    new = torch.load(path, weights_only=True)
    name, key, *rest = new["rng"]["numpy"]
    assert torch.is_tensor(key)                       # written now: a tensor, no numpy object in the file
    new["rng"]["numpy"] = (name, key.numpy(), *rest)  # as np.random.get_state() returned it
    new["state"]["best_value"] = np.float64(new["state"]["best_value"])
    torch.save(new, path)
    with pytest.raises(Exception, match="numpy"):     # what the old file needs beyond torch's default allowlist
        torch.load(path, weights_only=True)
    resumed, state = _fit(tmp_path / "b", _Tracker(), resumed=True, seed=123)
    assert state.epoch == 4 and state.step == 12
    for a, b in zip(whole.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_a_hostile_checkpoint_is_refused_in_one_line_and_runs_nothing(tmp_path):
    layout = {"model": {}, "optimizer": {}, "scheduler": None, "state": {"epoch": 1}, "rng": {}}
    write_hostile(tmp_path / "last.pt", tmp_path / "marker", layout)
    with pytest.raises(AaexpError) as err:
        _fit(tmp_path, _Tracker(), resumed=True)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{tmp_path / 'last.pt'}: refused to open an aaexp checkpoint") and \
        "without resume=" in msg, msg
    assert not (tmp_path / "marker").exists()
