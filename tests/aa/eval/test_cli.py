"""`aaexp eval --student/--teacher/--baseline`: end to end through aaexp.commands.cli.main, MLflow included."""

from __future__ import annotations

import json
import math

import pytest

from aaexp.commands import cli
from aaexp.tracking import store as tracking

SMALL = ["--n-tones", "3", "--eval-set", "window_s=0.1", "--eval-set", "warmup.check_s=0.01", "--eval-set", "sweep.seconds=0.3"]


@pytest.fixture
def jhm8(shared_data):
    d = shared_data / "nam"
    return {"teacher": str(d / "jhm8_tcn_teacher.nam"), "student": str(d / "jhm8_tcn_student.nam")}


def at_rate(src: str, tmp_path, rate: int) -> str:
    """A copy of a .nam file that claims another sample rate."""
    doc = json.loads(open(src).read())
    doc["sample_rate"] = rate
    out = tmp_path / f"at_{rate}.nam"
    out.write_text(json.dumps(doc))
    return str(out)


def one_line_error(capsys) -> str:
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("aaexp eval: error")]
    assert len(err) == 1
    return err[0]


def test_different_rates_are_refused_with_a_hint(jhm8, tmp_path, capsys):
    s48 = at_rate(jhm8["student"], tmp_path, 48000)
    assert cli.main(["eval", "--teacher", jhm8["teacher"], "--student", s48, "--no-log", "--out", str(tmp_path)]) == 2
    msg = one_line_error(capsys)
    assert "48000 Hz" in msg and "44100 Hz" in msg and "--resample" in msg


def test_resample_runs_the_student_at_its_own_rate(jhm8, tmp_path, capsys):
    s48 = at_rate(jhm8["student"], tmp_path, 48000)
    out = tmp_path / "r.json"
    rc = cli.main(["eval", "--teacher", jhm8["teacher"], "--student", s48, "--resample", "--no-log", "--no-plots",
                   "--out", str(tmp_path / "o"), "--json", str(out), *SMALL])
    assert rc == 0
    assert "resampling the student 48000 Hz <-> 44100 Hz" in capsys.readouterr().err
    res = json.loads(out.read_text())
    assert res["meta"]["fs"] == 44100
    assert len(res["warnings"]) == 1 and "resampled to 44100 Hz" in res["warnings"][0]   # and nothing about derivation
    hesr = [r["hesr_r_db"] for r in res["rows"] if r["model"] == "student" and r["band"] == "all"][0]
    assert -120 < hesr < 0                                                  # another rate: not the teacher


@pytest.mark.parametrize("argv, needle", [
    (["--student", "missing.nam"], "missing.nam"),
    (["--student", "{bad}"], "not JSON"),
    (["--teacher", "{t}"], "--student is required"),
    (["--student", "{t}", "--baseline", "{t}"], "--baseline needs --teacher"),
    (["--student", "{t}", "--eval-set", "warmup.nonsense=1"], "--eval-set"),
    (["--student", "{t}", "--eval-set", "group_by=bands"], "group_by"),
])
def test_bad_input_is_one_line_and_exit_2(jhm8, tmp_path, capsys, argv, needle):
    bad = tmp_path / "bad.nam"
    bad.write_text("this is not json")
    argv = [a.replace("{bad}", str(bad)).replace("{t}", jhm8["teacher"]) for a in argv]
    assert cli.main(["eval", *argv, "--no-log", "--no-plots", "--out", str(tmp_path), *SMALL]) == 2
    assert needle in one_line_error(capsys)


@pytest.mark.slow
def test_baseline_verdict_logged_into_an_existing_run(jhm8, tmp_path, mlflow_uri, capsys):
    with tracking.start_run("aaexp-aa", "training run") as t:
        run_id = t.run_id
    rc = cli.main(["eval", "--teacher", jhm8["teacher"], "--student", jhm8["student"], "--baseline", jhm8["teacher"],
                   "--run-id", run_id, "--out", str(tmp_path / "o"), *SMALL])
    assert rc == 0
    out = capsys.readouterr().out
    assert "verdict: try the harmonic loss" in out                          # baseline = teacher: HESR-R at the floor
    run = tracking.client().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["verdict"] == "try the harmonic loss"
    m = run.data.metrics
    assert m["eval/baseline/hesr_r/all"] == -120.0 and m["eval/teacher/hesr_r/all"] == -120.0
    assert m["eval/hesr_r/all"] > -120.0 and math.isnan(m["eval/nmr_s/2k-8k"])              # 3 tones: 27.5 Hz, 574 Hz, 12 kHz
    names = {a.path for a in tracking.client().list_artifacts(run_id, "eval")}
    assert {"eval/table.csv", "eval/table.json", "eval/plots"} <= names
    plots = {a.path for a in tracking.client().list_artifacts(run_id, "eval/plots")}
    assert plots == {"eval/plots/bands.png", "eval/plots/tones.png", "eval/plots/sweep_spectrograms.png"}


@pytest.mark.slow
def test_demo_teacher_really_aliases(tmp_path, mlflow_uri, capsys):
    from aaexp.aa.models import DEMO_TEACHER

    out = tmp_path / "demo.json"
    rc = cli.main(["eval", "--student", str(DEMO_TEACHER), "--json", str(out), "--out", str(tmp_path / "o"),
                   "--n-tones", "4", "--level", "-20", "--eval-set", "tones.f_min_hz=2050", "--eval-set", "tones.f_max_hz=7900",
                   "--eval-set", "window_s=0.25"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "student" in text and "2k-8k" in text
    res = json.loads(out.read_text())
    band = [r for r in res["rows"] if r["band"] == "2k-8k"][0]
    assert band["n_tones"] == 4 and band["hesr_r_db"] is None               # no teacher: HESR-R n/a
    assert band["nmr_s_db"] > -10                                           # audible aliasing
    runs = tracking.client().search_runs([tracking.client().get_experiment_by_name("aaexp-aa").experiment_id])
    assert len(runs) == 1 and runs[0].data.metrics["eval/nmr_s/2k-8k"] == pytest.approx(band["nmr_s_db"])
    assert (tmp_path / "o" / "plots" / "sweep_spectrograms.png").stat().st_size > 10_000


def test_model_rate_sets_the_rate_of_files_without_one(jhm8, shared_data, tmp_path, capsys):
    lstm = str(shared_data / "nam" / "jhm8_lstm_student.json")            # Proteus: no sample rate in the file
    argv = ["eval", "--teacher", jhm8["teacher"], "--student", lstm, "--model-rate", "48000", "--no-log", "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "no sample rate" not in err and "runs at 48000 Hz" in err
