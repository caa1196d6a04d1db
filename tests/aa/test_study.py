"""Tone data, target cache, framing, and end-to-end training runs of the anti-aliasing study."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from omegaconf import OmegaConf

from aaexp.aa.train import data as tone_data
from aaexp.aa.train.framing import Framing
from aaexp.core.config import compose
from aaexp.core.errors import AaexpError

FS = 44100.0


class TanhTeacher(torch.nn.Module):
    """A memoryless clipper with the AmpModel interface: y = tanh(g·x) (aliases hard, no state)."""

    architecture = "WaveNet"
    receptive_field = 1
    sample_rate = FS

    def __init__(self, gain: float = 8.0):
        super().__init__()
        self.gain = gain
        self.w = torch.nn.Parameter(torch.ones((), dtype=torch.float64))

    def forward(self, x):
        return torch.tanh(self.gain * self.w * x)


def plain(cfg):
    return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))


@pytest.fixture
def data_cfg(tmp_path):
    cfg = plain(compose(["trainer=quick"]).data)
    cfg.n_train, cfg.n_val, cfg.tone_seconds, cfg.window_seconds = 10, 4, 0.06, 0.05
    cfg.cache_dir = str(tmp_path / "cache")
    return cfg


def numpy_bandlimited_tanh(f0, amp, phase, n_warmup, n, gain=8.0):
    """Independent: the tone, tanh, keep the rfft bins that are multiples of the f0 bin."""
    t = np.arange(n_warmup + n) / FS
    y = np.tanh(gain * amp * np.sin(2 * np.pi * f0 * t + phase))[n_warmup:]
    m = int(round(f0 * n / FS))
    spec = np.fft.rfft(y)
    keep = np.arange(len(spec)) % m == 0
    return np.fft.irfft(spec * keep, n=n)


def test_targets_are_the_bandlimited_teacher_output(tmp_path, data_cfg):
    teacher_file = tmp_path / "t.nam"
    teacher_file.write_text("stand-in teacher file")
    train, val, path, hit = tone_data.load_or_build(TanhTeacher(), teacher_file, data_cfg, "float64", "cpu")
    assert not hit and path.is_file()
    n = train.n_window
    assert n == 2203 and train.n_warmup == round(0.06 * FS) - n  # largest prime ≤ 2205
    idx = torch.tensor([7, 0, 3])
    got = train.targets(idx).numpy()
    for row, i in enumerate(idx.tolist()):
        ref = numpy_bandlimited_tanh(float(train.f0[i]), float(train.amp[i]), float(train.phase[i]), train.n_warmup, n)
        np.testing.assert_allclose(got[row], ref, atol=1e-12)
        assert float(train.f0[i]) * n / FS == pytest.approx(int(train.m[i]), abs=1e-9)  # exactly periodic
    # validation: MIDI 21..108 evenly, −20 dBFS, zero phase
    wanted = 440.0 * 2 ** ((np.linspace(21, 108, 4) - 69) / 12)
    assert np.all(np.abs(val.f0.numpy() - wanted) <= FS / n / 2 + 1e-9)  # snapped by at most half a bin
    np.testing.assert_allclose(val.amp.numpy(), 0.1)
    np.testing.assert_allclose(val.phase.numpy(), 0.0)
    # second call: served from the cache, identical
    train2, _, path2, hit2 = tone_data.load_or_build(TanhTeacher(), teacher_file, data_cfg, "float64", "cpu")
    assert hit2 and path2 == path and torch.equal(train2.targets(idx), train.targets(idx))
    assert len(list(path.parent.glob("*.pt"))) == 1
    # a different data setting or teacher file is a different entry
    data_cfg.val_db = -30.0
    assert tone_data.cache_key(teacher_file, data_cfg, FS, "float64") != path.stem.split("-")[1]


def test_pow2_window_targets_use_odd_bins_and_a_separate_cache_entry(tmp_path, data_cfg):
    teacher_file = tmp_path / "t.nam"
    teacher_file.write_text("stand-in teacher file")
    _, _, prime_path, _ = tone_data.load_or_build(TanhTeacher(), teacher_file, data_cfg, "float64", "cpu")
    data_cfg.window_kind = "pow2"
    train, _, path, hit = tone_data.load_or_build(TanhTeacher(), teacher_file, data_cfg, "float64", "cpu")
    assert not hit and path != prime_path
    n = train.n_window
    assert n == 2048 and train.n_warmup == round(0.06 * FS) - n     # largest power of two ≤ 2205
    assert (train.m % 2 == 1).all()
    idx = torch.tensor([1, 5, 9])
    got = train.targets(idx).numpy()
    for row, i in enumerate(idx.tolist()):
        ref = numpy_bandlimited_tanh(float(train.f0[i]), float(train.amp[i]), float(train.phase[i]), train.n_warmup, n)
        np.testing.assert_allclose(got[row], ref, atol=1e-12)


def test_a_planted_cache_entry_is_rebuilt_without_running_it(tmp_path, data_cfg, caplog):
    """The cache folder is shared between jobs and users: an entry that would run code is never opened as a
    pickle; it is named in a warning and computed again, the same targets as before."""
    import logging

    from tests.hostile import write_hostile

    teacher_file = tmp_path / "t.nam"
    teacher_file.write_text("stand-in teacher file")
    train, _, path, _ = tone_data.load_or_build(TanhTeacher(), teacher_file, data_cfg, "float64", "cpu")
    blob = torch.load(path, weights_only=True)     # torch's own weights-only loader reads what the cache writes
    write_hostile(path, tmp_path / "marker", blob)
    with caplog.at_level(logging.WARNING):
        again, _, path2, hit = tone_data.load_or_build(TanhTeacher(), teacher_file, data_cfg, "float64", "cpu",
                                                       log=logging.getLogger("t"))
    assert not (tmp_path / "marker").exists()
    assert not hit and path2 == path
    assert any(str(path) in r.getMessage() and "refused" in r.getMessage() for r in caplog.records), caplog.text
    idx = torch.arange(len(train))
    assert torch.equal(again.targets(idx), train.targets(idx))
    assert "payload" not in torch.load(path, weights_only=True)   # the planted file is gone


def test_a_planted_best_student_checkpoint_is_refused_and_runs_nothing(tmp_path):
    """The students are exported from the run folder's checkpoints (a resumed colleague's folder too)."""
    from types import SimpleNamespace

    from aaexp.aa.models import DEMO_TEACHER, load_model
    from aaexp.aa.study import export_students
    from tests.hostile import write_hostile

    best = write_hostile(tmp_path / "student_best.pt", tmp_path / "marker", {"model": {}, "epoch": 1, "step": 2})
    ctx = SimpleNamespace(out_dir=tmp_path, tracker=None)
    with pytest.raises(AaexpError, match=r"student_best.pt: refused to open an aaexp student checkpoint: loading it would call"):
        export_students(ctx, load_model(DEMO_TEACHER), best, "test")
    assert not (tmp_path / "marker").exists()


class SlowTanhTeacher(TanhTeacher):
    """Slow enough that two jobs started together overlap: without the lock both would compute."""

    def forward(self, x):
        import time

        time.sleep(0.5)
        return super().forward(x)


def _build_in_child(teacher_file, data_cfg, queue):
    _, _, _, hit = tone_data.load_or_build(SlowTanhTeacher(), teacher_file, data_cfg, "float64", "cpu")
    queue.put(hit)


def test_parallel_jobs_compute_the_targets_once(tmp_path, data_cfg):
    """Two processes asking for the same entry at once (a parallel sweep): one computes, one waits and reads."""
    import multiprocessing as mp

    teacher_file = tmp_path / "t.nam"
    teacher_file.write_text("stand-in teacher file")
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_build_in_child, args=(teacher_file, data_cfg, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert sorted(queue.get(timeout=5) for _ in procs) == [False, True]
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    assert not list((tmp_path / "cache").glob("*.tmp"))  # no temp file left behind


def test_level_and_f0_sampling(data_cfg):
    gen = torch.Generator().manual_seed(0)
    data_cfg.level_sampling = "linear"
    f0, amp, phase = tone_data.draw_train_tones(data_cfg, 4000, gen)
    # linear: gain uniform on [0, 10^(0/20)] (the reference); MIDI uniform on [21, 127]
    assert scipy.stats.kstest(amp.numpy(), "uniform", args=(0, 1)).pvalue > 1e-3
    midi = 69 + 12 * np.log2(f0.numpy() / 440)
    assert scipy.stats.kstest(midi, "uniform", args=(21, 106)).pvalue > 1e-3
    assert scipy.stats.kstest(phase.numpy(), "uniform", args=(0, 2 * np.pi)).pvalue > 1e-3
    data_cfg.level_sampling = "db"
    _, amp_db, _ = tone_data.draw_train_tones(data_cfg, 4000, gen)
    assert scipy.stats.kstest(20 * np.log10(amp_db.numpy()), "uniform", args=(-60, 60)).pvalue > 1e-3
    data_cfg.linear_f0_sample, data_cfg.f0_min, data_cfg.f0_max = True, 27.5, 18000.0
    f0_lin, _, _ = tone_data.draw_train_tones(data_cfg, 4000, gen)
    assert scipy.stats.kstest(f0_lin.numpy(), "uniform", args=(27.5, 18000 - 27.5)).pvalue > 1e-3
    data_cfg.level_sampling = "loud"
    with pytest.raises(AaexpError, match="level_sampling"):
        tone_data.draw_train_tones(data_cfg, 3, gen)


def test_wavenet_framing_is_the_steady_state_of_a_full_run():
    """Only the receptive field before each frame is computed, yet the output equals a full-length run."""
    from aaexp.aa.models import DEMO_TEACHER, load_model

    model = load_model(DEMO_TEACHER)
    n_warmup, n_window, history = model.receptive_field + 300, 3001, 54
    fr = Framing.build(model, n_warmup, n_window, history, tbptt=1000)
    assert fr.frames == ((0, 1000), (1000, 2001), (2001, 3001))  # ≈ tbptt each, tiling the window
    x = 0.3 * torch.sin(torch.arange(n_warmup + n_window, dtype=torch.float64) * 0.05).repeat(2, 1)
    with torch.no_grad():
        full = model(x)
        frames = list(fr.student_frames(model, x[:, fr.input_start:]))
    for (s, e), y in zip(fr.frames, frames):
        torch.testing.assert_close(y, full[:, n_warmup + s - history: n_warmup + e], rtol=0, atol=1e-13)
    with pytest.raises(AaexpError, match="warm-up"):
        Framing.build(model, model.receptive_field, n_window, history, None)


def test_lstm_framing_runs_the_warm_up_then_frames_in_order(shared_data):
    from aaexp.aa.models import load_model

    model = load_model(shared_data / "nam" / "jhm8_lstm_teacher.json", default_sample_rate=FS)
    fr = Framing.build(model, 500, 1200, 20, tbptt=400)
    x = 0.2 * torch.sin(torch.arange(1700, dtype=torch.float64) * 0.03).repeat(2, 1)
    with torch.no_grad():
        full = model(x)
        frames = list(fr.student_frames(model, x))
    got = torch.cat([frames[0]] + [f[:, fr.history:] for f in frames[1:]], dim=-1)
    torch.testing.assert_close(got, full[:, 500 - 20:], rtol=0, atol=1e-12)
    t = torch.arange(1200, dtype=torch.float64).repeat(2, 1)
    tf = fr.target_frames(t)
    assert torch.equal(tf[0][:, :20], t[:, -20:]) and torch.equal(tf[1], t[:, 400 - 20: 800])


# -- end-to-end runs on the packaged demo teacher ----------------------------------------------------
# Small enough for CI: a few short tones, two epochs, a 4-tone evaluation without plots.
TINY = ["trainer=quick", "trainer.train_tones=8", "trainer.val_tones=3", "trainer.batch_size=4",
        "trainer.val_batch_size=3", "trainer.tone_seconds=0.13", "trainer.window_seconds=0.07",
        "trainer.max_epochs=2", "eval.tones.n=4", "eval.window_s=0.1", "eval.warmup.min_s=0.05",
        "eval.sweep.seconds=0.2", "eval.plots=false", "progress=false"]


def train(tmp_path, *overrides: str, run: str = "run") -> int:
    from aaexp.commands import cli

    return cli.main(["train", *overrides, f"data.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / run}"])


def finished_runs(uri: str):
    from aaexp.tracking import store as tracking

    cl = tracking.client(uri)
    exp = cl.get_experiment_by_name("aaexp-aa")
    return cl, cl.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


def history(cl, run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(cl.get_metric_history(run_id, key), key=lambda m: m.step)]


@pytest.mark.slow
def test_small_demo_lowers_validation_loss_and_the_students_aliasing(tmp_path, mlflow_uri, capsys):
    """A smaller `make demo`: half the quick profile's tones and epochs, a 12-tone evaluation."""
    from aaexp.aa.models import DEMO_TEACHER, load_model

    rc = train(tmp_path, "+experiment=lambda_0.3", "trainer=quick", "trainer.train_tones=192", "trainer.max_epochs=3",
               "eval.tones.n=12", "eval.window_s=0.25", "eval.sweep.seconds=0.5", "progress=false")
    assert rc == 0
    assert "2k-8k" in capsys.readouterr().out  # the per-band table is printed
    cl, (r,) = finished_runs(mlflow_uri)
    assert r.info.status == "FINISHED"
    val = history(cl, r.info.run_id, "val/loss")
    assert len(val) == 4 and min(val[1:]) < val[0] and val[-1] < val[0], val  # epoch 0: the untrained copy
    m = r.data.metrics
    assert m["eval/nmr_s/2k-8k"] < m["eval/teacher/nmr_s/2k-8k"], (m["eval/nmr_s/2k-8k"], m["eval/teacher/nmr_s/2k-8k"])
    for key in ("train/loss", "train/esr_normal", "train/nmr", "train/dc", "val/esr_db", "val/nmr_db", "val/asr_db",
                "weight/esr_normal", "weight/nmr", "lambda", "lr", "perf/epoch_s", "perf/samples_per_s",
                "data/max_snap_cents", "eval/hesr_r/2k-8k"):
        assert key in m, key
    assert len(history(cl, r.info.run_id, "train/loss")) == 3 and m["lambda"] == 0.3
    assert m["weight/nmr"] == pytest.approx(0.3 / 1.3)
    assert r.data.tags["verdict"].startswith("n/a") and r.data.tags["data.cache"] == "miss"
    arts = {a.path for a in cl.list_artifacts(r.info.run_id, "students")}
    assert arts == {"students/student_best.nam", "students/student_last.nam"}
    best = load_model(tmp_path / "run" / "students" / "student_best.nam")
    assert best.source.version == load_model(DEMO_TEACHER).source.version  # the teacher's format version
    assert int(r.data.tags["best_epoch"]) == int(np.argmin(val))  # step = epoch; 0 = untrained
    assert {a.path for a in cl.list_artifacts(r.info.run_id, "eval")} >= {"eval/table.csv", "eval/plots"}


@pytest.mark.slow
def test_resume_after_epoch_1_matches_an_uninterrupted_run(tmp_path, mlflow_uri, monkeypatch):
    from aaexp.aa.models import load_model
    from aaexp.training import checkpoint

    assert train(tmp_path, "+experiment=lambda_0.3", *TINY, run="whole") == 0
    save = checkpoint.save

    def save_then_interrupt(path, state, *rest):
        out = save(path, state, *rest)
        if state.epoch == 1:
            raise KeyboardInterrupt  # as if Ctrl-C right after epoch 1's checkpoint
        return out

    monkeypatch.setattr(checkpoint, "save", save_then_interrupt)
    assert train(tmp_path, "+experiment=lambda_0.3", *TINY, run="cut") == 130
    cl, runs = finished_runs(mlflow_uri)
    assert [r.info.status for r in runs] == ["FINISHED", "KILLED"]
    monkeypatch.setattr(checkpoint, "save", save)
    assert train(tmp_path, "+experiment=lambda_0.3", *TINY, "resume=true", run="ignored") == 0
    cl, runs = finished_runs(mlflow_uri)
    whole, cut = runs
    assert cut.info.status == "FINISHED" and len(runs) == 2  # the same MLflow run, continued
    for key in ("val/loss", "val/nmr_db", "train/loss"):
        assert history(cl, cut.info.run_id, key) == history(cl, whole.info.run_id, key), key
    a = load_model(tmp_path / "whole" / "students" / "student_last.nam").state_dict()
    b = load_model(tmp_path / "cut" / "students" / "student_last.nam").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def nan_from_step(monkeypatch, step: int) -> None:
    """Make the training loss NaN from optimiser step `step` on (1-based; validation is left alone)."""
    from aaexp.aa.loss import mix as loss_mix
    forward = loss_mix.AALoss.forward
    calls = {"n": 0}

    def poisoned(self, *args):
        total, terms = forward(self, *args)
        if torch.is_grad_enabled():  # a training step, not validation
            calls["n"] += 1
            if calls["n"] >= step:
                total = total * float("nan")
        return total, terms

    monkeypatch.setattr(loss_mix.AALoss, "forward", poisoned)


@pytest.mark.slow
def test_nan_loss_fails_the_run_and_keeps_the_last_good_checkpoint(tmp_path, mlflow_uri, monkeypatch):
    nan_from_step(monkeypatch, 3)  # epoch 1 has 2 batches; epoch 2's first step diverges
    assert train(tmp_path, "+experiment=baseline", *TINY) == 1
    cl, (r,) = finished_runs(mlflow_uri)
    assert r.info.status == "FAILED" and "loss became nan" in r.data.tags["error"]
    blob = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert blob["state"]["epoch"] == 1


@pytest.mark.slow
def test_sweep_gives_a_parent_and_children_and_computes_targets_once(tmp_path, mlflow_uri):
    from aaexp.commands import cli

    rc = cli.main(["train", "-m", "+experiment=baseline", "loss.lam=0.3,3.0", *TINY, "trainer.max_epochs=1",
                   f"data.cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={tmp_path / 'multi'}"])
    assert rc == 0
    _, runs = finished_runs(mlflow_uri)
    parents = [r for r in runs if r.data.tags.get("sweep") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert sorted(c.data.params["loss.lam"] for c in children) == ["0.3", "3.0"]
    assert sorted(c.data.tags["data.cache"] for c in children) == ["hit", "miss"]
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
