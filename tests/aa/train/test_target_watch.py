"""Time to target: in-training evaluation on the grid, stop at target, counters across a resume."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from aaexp.aa.train.target_watch import excess_db
from aaexp.core.config import compose
from tests.aa.test_study import TINY, finished_runs, train

# Four tones in one band (8k-12k), so "every band" is one number that a few updates can move.
GRID = ["eval.tones.n=4", "eval.tones.f_min_hz=8000", "eval.window_s=0.1", "eval.warmup.min_s=0.05", "eval.plots=false"]
BAND = "8k-12k"


def test_excess_is_the_worst_margin_over_bands_with_values():
    thr = {"nmr_s_db": -10.0, "hesr_r_db": -15.0}
    rows = [{"band": "a", "nmr_s_db": -12.0, "hesr_r_db": -20.0},
            {"band": "b", "nmr_s_db": -11.0, "hesr_r_db": -14.5},      # HESR-R 0.5 dB over
            {"band": "c", "nmr_s_db": math.nan, "hesr_r_db": math.nan},  # no tones: ignored
            {"band": "all", "nmr_s_db": 50.0, "hesr_r_db": 50.0}]       # the summary row is not a band
    assert excess_db(rows, thr) == pytest.approx(0.5)
    rows[1]["hesr_r_db"] = -16.0
    assert excess_db(rows, thr) == pytest.approx(-1.0)                  # all pass: the smallest margin


def _teacher_nmr(tmp_path) -> float:
    """The demo teacher's NMR-S on the test grid, from `aaexp eval` (the instrument itself)."""
    from aaexp.aa.eval.evaluator import evaluate
    from aaexp.aa.models import DEMO_TEACHER, load_model

    cfg = OmegaConf.create(OmegaConf.to_container(compose(GRID).eval, resolve=True))
    res = evaluate(load_model(DEMO_TEACHER), None, cfg, "cpu")
    return next(r["nmr_s_db"] for r in res.models["teacher"].rows if r["band"] == BAND)


def _eval_student(path, *overrides):
    from aaexp.aa.eval.evaluator import evaluate
    from aaexp.aa.models import DEMO_TEACHER, load_model

    cfg = OmegaConf.create(OmegaConf.to_container(compose([*GRID, *overrides]).eval, resolve=True))
    res = evaluate(load_model(DEMO_TEACHER), load_model(path), cfg, "cpu")
    return {r["band"]: r for r in res.models["student"].rows}


@pytest.mark.slow
def test_in_training_evaluation_gives_the_numbers_of_aaexp_eval(tmp_path, mlflow_uri):
    """float32 training, float64 evaluation: the last in-training score equals aaexp eval of the exported student."""
    from aaexp.commands import cli

    assert train(tmp_path, "+experiment=lambda_0.3", *TINY, *GRID, "model.dtype=float32", "trainer.eval_every_n=1") == 0
    cl, (r,) = finished_runs(mlflow_uri)
    evals = sorted(cl.get_metric_history(r.info.run_id, "eval/pass"), key=lambda m: m.step)
    assert [m.step for m in evals] == [0, 1, 2, 3, 4]       # 2 epochs × 2 batches, one evaluation after each update
    in_training = {m.key: m.value for key in (f"eval/nmr_s/{BAND}", f"eval/hesr_r/{BAND}")
                   for m in cl.get_metric_history(r.info.run_id, key) if m.step == 4 and m.timestamp <= evals[-1].timestamp}
    out = tmp_path / "ev"
    rc = cli.main(["eval", "--teacher", str(_demo()), "--student", str(tmp_path / "run" / "students" / "student_last.nam"),
                   "--no-log", "--json", str(out / "r.json"), "--out", str(out),
                   *[f"--eval-set={o[len('eval.'):]}" for o in GRID]])
    assert rc == 0
    import json

    rows = {(row["model"], row["band"]): row for row in json.loads((out / "r.json").read_text())["rows"]}
    assert in_training[f"eval/nmr_s/{BAND}"] == pytest.approx(rows["student", BAND]["nmr_s_db"], abs=0.01)
    assert in_training[f"eval/hesr_r/{BAND}"] == pytest.approx(rows["student", BAND]["hesr_r_db"], abs=0.01)
    m = r.data.metrics
    assert math.isnan(m["perf/time_to_target_s"])          # never met the default thresholds: NaN, not an error
    assert "time_to_target_s" not in r.data.tags and r.info.status == "FINISHED"
    assert m["perf/updates"] == 4 and not (tmp_path / "run" / "students" / "student_target.nam").exists()


def _demo():
    from aaexp.aa.models import DEMO_TEACHER

    return DEMO_TEACHER


@pytest.mark.slow
def test_stop_at_target_stops_at_the_first_pass_and_exports_that_student(tmp_path, mlflow_uri):
    # The line: 0.3 dB below the teacher's own NMR-S (the untrained copy fails it), HESR-R loose.
    line = _teacher_nmr(tmp_path) - 0.3
    thr = [f"eval.thresholds.nmr_s_db={line}", "eval.thresholds.hesr_r_db=0.0"]
    rc = train(tmp_path, "+experiment=lambda_0.3", *TINY, *GRID, *thr, "trainer.max_epochs=20", "trainer.lr=2e-3",
               "trainer.eval_every_n=2", "trainer.stop_at_target=true")
    assert rc == 0
    cl, (r,) = finished_runs(mlflow_uri)
    passes = sorted(cl.get_metric_history(r.info.run_id, "eval/pass"), key=lambda m: m.step)
    flags = [m.value for m in passes]
    assert flags[0] == 0.0 and flags[-1] == 1.0 and sum(flags) == 1.0, flags   # stopped at the first pass
    m = r.data.metrics
    step = passes[-1].step
    assert m["perf/updates_to_target"] == step and m["perf/updates"] == step < 20 * 2
    assert m["perf/tones_to_target"] == step * 4             # batch 4, one update per batch
    assert 0 < m["perf/time_to_target_s"] <= m["perf/train_wall_s"]
    assert float(r.data.tags["time_to_target_s"]) == pytest.approx(m["perf/time_to_target_s"], abs=1)
    target = tmp_path / "run" / "students" / "student_target.nam"
    assert target.is_file()
    row = _eval_student(target, *thr)[BAND]                # judged again, from the file, by the instrument
    assert row["nmr_s_db"] < line and row["nmr_s_db"] == pytest.approx(m[f"target/nmr_s/{BAND}"], abs=0.01)


@pytest.mark.slow
def test_resume_keeps_the_update_and_wall_time_counters(tmp_path, mlflow_uri, monkeypatch):
    from aaexp.training import checkpoint
    save = checkpoint.save
    seen = {}

    def save_then_interrupt(path, state, *rest):
        out = save(path, state, *rest)
        if state.epoch == 1:
            seen.update(step=state.step, wall=state.wall_s)
            raise KeyboardInterrupt
        return out

    monkeypatch.setattr(checkpoint, "save", save_then_interrupt)
    args = ["+experiment=lambda_0.3", *TINY, *GRID, "trainer.eval_every_n=1", "trainer.max_epochs=2"]
    assert train(tmp_path, *args) == 130
    monkeypatch.setattr(checkpoint, "save", save)
    assert train(tmp_path, *args, "resume=true", run="ignored") == 0
    cl, (r,) = finished_runs(mlflow_uri)
    blob = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert seen["step"] == 2 and blob["state"]["step"] == 4           # updates counted on, not restarted
    assert blob["state"]["wall_s"] > seen["wall"] > 0                 # wall time too
    walls = {m.step: m.value for m in cl.get_metric_history(r.info.run_id, "perf/wall_s")}
    assert walls[3] > seen["wall"] and walls[4] > walls[3]
    per_epoch = {m.step: m.value for m in cl.get_metric_history(r.info.run_id, "perf/updates") if m.step <= 2}
    assert per_epoch == {1: 2.0, 2: 4.0}                              # epoch 1 before the cut, epoch 2 after
