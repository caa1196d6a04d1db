"""Issue 13.6: divergence short of NaN is flagged, and the NaN guard names a checkpoint that exists."""

import re
from pathlib import Path

import pytest

from tests.aa.test_study import TINY, finished_runs, history, train


@pytest.mark.slow
def test_a_loss_that_explodes_without_nan_is_tagged_or_stopped(tmp_path, mlflow_uri):
    assert train(tmp_path, "+experiment=lambda_0.3", *TINY, "trainer.lr=1e6", "trainer.divergence_baseline_steps=1", run="warn") == 0
    cl, (r,) = finished_runs(mlflow_uri)
    assert r.info.status == "FINISHED" and "divergence_factor=1000" in r.data.tags["diverged"]
    # Independent of the watch: the logged curve really grew by orders of magnitude.
    assert history(cl, r.info.run_id, "train/loss")[-1] > 1e3 * history(cl, r.info.run_id, "val/loss")[0]

    assert train(tmp_path, "+experiment=lambda_0.3", *TINY, "trainer.lr=1e6", "trainer.divergence_baseline_steps=1",
                 "trainer.on_divergence=stop",
                 run="stop") == 1
    _, (_, r) = finished_runs(mlflow_uri)
    assert r.info.status == "FAILED" and "TrainingDiverged" in r.data.tags["error"]


@pytest.mark.slow
def test_nan_in_the_first_epoch_names_the_checkpoint_that_exists(tmp_path, mlflow_uri):
    assert train(tmp_path, "+experiment=lambda_0.3", *TINY, "trainer.lr=1e300") == 1
    _, (r,) = finished_runs(mlflow_uri)
    error = r.data.tags["error"]
    assert r.info.status == "FAILED" and "loss became nan" in error and "epoch 1," in error
    named = re.findall(r"(/\S+\.pt)", error)
    assert named and all(Path(p).is_file() for p in named), error
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()
