"""The GPU path of the training loop (no per-step host sync) trains and guards exactly as the CPU path.

On a GPU the loop keeps each step's loss on the device and checks NaN/divergence in bulk; here that path
is forced on the CPU and compared with the per-step path.
"""

from __future__ import annotations

import pytest
import torch

from aaexp.training.loop import Loop
from tests.aa.test_study import TINY, finished_runs, history, nan_from_step, train


def _deferred(monkeypatch):
    init = Loop.__init__

    def gpu_like(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.sync_each_step = False

    monkeypatch.setattr(Loop, "__init__", gpu_like)


@pytest.mark.slow
def test_deferred_checks_train_the_same_student(tmp_path, mlflow_uri, monkeypatch):
    from aaexp.aa.models import load_model

    assert train(tmp_path, "+experiment=lambda_0.3", *TINY, "trainer.log_every_n_steps=1", run="synced") == 0
    _deferred(monkeypatch)
    assert train(tmp_path, "+experiment=lambda_0.3", *TINY, "trainer.log_every_n_steps=1", run="deferred") == 0
    cl, (a, b) = finished_runs(mlflow_uri)
    for key in ("train/loss", "train/loss_step", "val/loss"):
        assert history(cl, a.info.run_id, key) == pytest.approx(history(cl, b.info.run_id, key), rel=1e-12), key
    wa = load_model(tmp_path / "synced" / "students" / "student_last.nam").state_dict()
    wb = load_model(tmp_path / "deferred" / "students" / "student_last.nam").state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_deferred_checks_still_stop_a_nan_and_name_its_step(tmp_path, mlflow_uri, monkeypatch):
    nan_from_step(monkeypatch, 3)
    _deferred(monkeypatch)
    assert train(tmp_path, "+experiment=baseline", *TINY) == 1
    _, (r,) = finished_runs(mlflow_uri)
    assert r.info.status == "FAILED" and "loss became nan at epoch 2, step 3" in r.data.tags["error"]
