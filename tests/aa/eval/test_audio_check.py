"""`aaexp eval --audio-check` / `--di FILE`, and the check at the end of a training run: files, numbers, MLflow."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf

from aaexp.aa.models import DEMO_TEACHER, load_model
from aaexp.aa.signal.di import make_di
from aaexp.commands import cli
from aaexp.core.config import CONF_DIR
from aaexp.tracking import store as tracking

SIDES = ("di", "teacher", "student", "teacher_x2")
FILES = {f"{s}.wav" for s in SIDES} | {"spectrograms.png", "audio_check.json"}


@pytest.mark.slow
def test_audio_check_on_the_demo_teacher_writes_and_logs_every_side(tmp_path, mlflow_uri, capsys):
    demo = str(DEMO_TEACHER)
    rc = cli.main(["eval", "--teacher", demo, "--student", demo, "--audio-check", "--eval-set", "audio_check.seconds=1.5",
                   "--out", str(tmp_path / "ev")])
    assert rc == 0
    assert "teacher_x2" in capsys.readouterr().out
    folder = tmp_path / "ev" / "audio_check"
    assert {p.name for p in folder.iterdir()} == FILES
    wav = {}
    for s in SIDES:
        wav[s], rate = sf.read(folder / f"{s}.wav", dtype="float64")
        assert rate == 44100 and wav[s].shape == (round(1.5 * 44100),), s
    cfg = OmegaConf.load(CONF_DIR / "eval" / "aa.yaml").audio_check
    np.testing.assert_array_equal(wav["di"], make_di(cfg.di, 44100, 1.5).audio.astype(np.float32))
    # the teacher's file is the teacher run on the DI (float32 WAV of a float64 run)
    model = load_model(DEMO_TEACHER, dtype=torch.float64)
    with torch.no_grad():
        direct = model(torch.from_numpy(make_di(cfg.di, 44100, 1.5).audio)[None])[0].numpy()
    np.testing.assert_allclose(wav["teacher"], direct, atol=1e-6)
    np.testing.assert_array_equal(wav["student"], wav["teacher"])   # the student is the teacher here

    doc = json.loads((folder / "audio_check.json").read_text())
    sides = doc["sides"]
    assert sides["student"]["esr_lp_db"] == -120.0                   # identical: the floor
    assert sides["teacher"]["esr_lp_db"] is None and sides["di"]["esr_lp_db"] is None
    assert sides["di"]["inharmonic_db"] == -120.0                    # the DI is exactly harmonic
    assert sides["teacher_x2"]["inharmonic_db"] < sides["teacher"]["inharmonic_db"] - 10   # oversampling aliases less
    assert -80 < sides["teacher_x2"]["esr_lp_db"] < 0
    assert [n["midi"] for n in doc["notes"]] == [40, 88]

    cl = tracking.client(mlflow_uri)
    (run,) = cl.search_runs([cl.get_experiment_by_name("aaexp-aa").experiment_id])
    arts = {a.path for a in cl.list_artifacts(run.info.run_id, "eval/audio_check")}
    assert arts == {f"eval/audio_check/{f}" for f in FILES}
    m = run.data.metrics
    assert m["audio/student/esr_lp_db"] == -120.0
    assert m["audio/teacher_x2/inharmonic_db"] == pytest.approx(sides["teacher_x2"]["inharmonic_db"])
    assert "audio/teacher/esr_lp_db" not in m                        # undefined numbers are not logged


def test_di_file_is_read_mono_at_the_model_rate(tmp_path, capsys):
    t = np.arange(11025) / 22050
    tone = 0.1 * np.sin(2 * np.pi * 220 * t)
    sf.write(tmp_path / "mine.wav", np.stack([tone, tone], axis=1), 22050)
    demo = str(DEMO_TEACHER)
    rc = cli.main(["eval", "--teacher", demo, "--student", demo, "--di", str(tmp_path / "mine.wav"), "--no-log",
                   "--eval-set", "audio_check.oversample=[]", "--out", str(tmp_path / "ev")])
    assert rc == 0
    folder = tmp_path / "ev" / "audio_check"
    di, rate = sf.read(folder / "di.wav")
    assert rate == 44100 and di.size == 22050
    ref = 0.1 * np.sin(2 * np.pi * 220 * np.arange(22050) / 44100)
    assert np.max(np.abs(di[2000:-2000] - ref[2000:-2000])) < 1e-4   # resampled 2x, away from the edges
    doc = json.loads((folder / "audio_check.json").read_text())
    assert doc["sides"]["teacher"]["inharmonic_db"] is None and "inharmonic_db" in doc["meta"]["undefined"]
    assert doc["sides"]["student"]["esr_lp_db"] == -120.0 and "teacher_x2" not in doc["sides"]


@pytest.mark.parametrize("argv, needle", [
    (["--student", str(DEMO_TEACHER), "--audio-check"], "needs --teacher"),
    (["--teacher", str(DEMO_TEACHER), "--student", str(DEMO_TEACHER), "--di", "/nonexistent.wav"], "no such file"),
])
def test_bad_audio_check_input_is_one_line_and_exit_2(tmp_path, capsys, argv, needle):
    assert cli.main(["eval", *argv, "--no-log", "--out", str(tmp_path)]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("aaexp eval: error")]
    assert len(err) == 1 and needle in err[0], err


@pytest.mark.slow
def test_a_training_run_ends_with_the_audio_check(tmp_path, mlflow_uri):
    from tests.aa.test_study import finished_runs, train

    rc = train(tmp_path, "trainer=quick", "trainer.train_tones=16", "trainer.val_tones=2", "trainer.max_epochs=1",
               "eval.tones.n=3", "eval.window_s=0.1", "eval.warmup.check_s=0.01", "eval.plots=false", "progress=false")
    assert rc == 0
    cl, (r,) = finished_runs(mlflow_uri)
    arts = {a.path for a in cl.list_artifacts(r.info.run_id, "eval/audio_check")}
    assert arts == {f"eval/audio_check/{f}" for f in FILES}
    assert (tmp_path / "run" / "eval" / "audio_check" / "student.wav").is_file()
    doc = json.loads((tmp_path / "run" / "eval" / "audio_check" / "audio_check.json").read_text())
    assert doc["meta"]["seconds"] == pytest.approx(1.5)               # trainer.audio_check_s of the quick profile
    for side in ("teacher", "student", "teacher_x2"):
        assert f"audio/{side}/inharmonic_db" in r.data.metrics, side
    assert r.data.metrics["audio/student/esr_lp_db"] < 0
