"""Learning-rate schedules and the time budget in real training runs, checked against their closed forms."""

from __future__ import annotations

import math

import pytest

from tests.aa.test_study import TINY, finished_runs, history, train

LR, MIN_RATIO = 1e-3, 0.05


def _cosine(progress: float) -> float:
    """lr multiplier of a cosine decay to MIN_RATIO at `progress` of the run, written out here."""
    p = min(max(progress, 0.0), 1.0)
    return MIN_RATIO + (1 - MIN_RATIO) * (1 + math.cos(math.pi * p)) / 2


@pytest.mark.slow
def test_cosine_over_updates_ends_at_its_floor(tmp_path, mlflow_uri):
    # TINY: 2 batches × 1 frame × 2 epochs = 4 updates, so the last epoch ends on the schedule's last step.
    assert train(tmp_path, *TINY, f"trainer.lr={LR}", "trainer.lr_schedule=cosine", f"trainer.lr_min_ratio={MIN_RATIO}") == 0
    cl, (r,) = finished_runs(mlflow_uri)
    assert history(cl, r.info.run_id, "lr") == pytest.approx([LR * _cosine(2 / 4), LR * _cosine(4 / 4)], rel=1e-9)


@pytest.mark.slow
def test_cosine_over_wall_time_decays_no_faster_than_the_clock(tmp_path, mlflow_uri):
    """The fast and demo recipes: cosine over `trainer.max_time_s` of wall time (a LambdaLR reading the loop's clock)."""
    budget = 600.0
    assert train(tmp_path, *TINY, f"trainer.lr={LR}", "trainer.lr_schedule=cosine", f"trainer.lr_min_ratio={MIN_RATIO}",
                 f"trainer.max_time_s={budget}") == 0
    cl, (r,) = finished_runs(mlflow_uri)
    lrs = history(cl, r.info.run_id, "lr")
    wall = r.data.metrics["perf/train_wall_s"]           # the clock at the end, after every update
    assert len(lrs) == 2 and lrs[0] >= lrs[1]
    assert LR * _cosine(wall / budget) <= lrs[1] < LR     # decayed, but not past where the clock had got to


@pytest.mark.slow
def test_the_time_budget_stops_after_the_first_update(tmp_path, mlflow_uri):
    assert train(tmp_path, *TINY, "trainer.max_time_s=0.001") == 0   # spent before the first update ends
    cl, (r,) = finished_runs(mlflow_uri)
    assert r.info.status == "FINISHED" and r.data.metrics["perf/updates"] == 1
    assert history(cl, r.info.run_id, "val/loss")[0] > 0 and len(history(cl, r.info.run_id, "val/loss")) == 2
