"""The study end to end: experiments build and train, a quick run lowers the loss, runs resume."""

import numpy as np
import pytest
import torch

from aaexp.core.config import compose
from aaexp.tnca import study
from aaexp.tnca.audio_io import load_audio
from aaexp.tnca.measures import describe
from tests.shared_data import DEFAULT, require_data

TINY = ["trainer=quick", "data.max_seconds=0.2", "trainer.growth_steps=4"]


def violin_path() -> str:
    """data.path of the violin target (the test skips when the data is absent)."""
    return f"data.path={require_data() / 'tnca' / 'violin.wav'}"


def build(experiment, *over):
    cfg = compose([f"+experiment={experiment}", *TINY, violin_path(), *over])
    torch.manual_seed(0)
    return cfg, study.build(cfg, torch.device("cpu"))


@pytest.mark.parametrize("experiment,outputs", [
    ("tnca_baseline", {"mel": (80, "notebook_db")}),
    ("tnca_bigvgan_fixes", {"mel": (80, "bigvgan_v2_22khz_80band_256x")}),
    ("tnca_multiscale", {"mel": (80, None), "mel40": (40, None), "mel160": (160, None)}),
    ("tnca_dual", {"mel": (80, None), "linear": (513, None)}),
])
def test_each_experiment_builds_and_one_step_backpropagates(experiment, outputs):
    cfg, s = build(experiment)
    grown = s.model.readout(s.model.grow(4))
    assert {k: v.shape[1] for k, v in grown.items()} == {k: n for k, (n, _) in outputs.items()}
    for name, (_, contract) in outputs.items():
        assert grown[name].shape == s.target.spectrograms[name].shape
        assert contract is None or s.contract.name == contract
    terms = study.compute_loss(s, grown)
    terms["loss/total"].backward()
    grads = [p.grad for p in s.model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    expected = sum(o.weight * terms[f"loss/{o.name}"].item() for o in s.specs)
    assert terms["loss/total"].item() == pytest.approx(expected, rel=1e-6)  # weights 1/2/4, 0.5 as configured


def test_dual_sources_play_mel_linear_or_a_mix():
    cfg, s = build("tnca_dual")
    with torch.no_grad():
        n = s.contract.num_samples(s.target.frames)
        for source in ["mel", "linear", "mix"]:
            s.vcfg["source"] = source
            assert study.synthesise(s, s.target.spectrograms, n_iter=4).shape == (1, n)


def test_audio_loss_gradient_reaches_the_nca():
    cfg, s = build("tnca_audio_loss", "loss.gram_weight=0", "loss.l1_weight=0", "loss.audio.griffin_lim_iters=2")
    with torch.no_grad():  # make the last layer non-zero so the output depends on the weights
        s.model.update[-1].weight.normal_(0, 0.1)
    terms = study.compute_loss(s, s.model.readout(s.model.grow(4)))
    assert terms["loss/total"].item() == pytest.approx(terms["loss/audio_mrstft"].item())
    terms["loss/total"].backward()
    assert s.model.update[0].weight.grad.abs().sum() > 0


@pytest.mark.slow
def test_quick_run_lowers_the_loss_logs_everything_and_resumes(tmp_path, mlflow_uri, shared_data):
    from aaexp.commands.cli import main
    from aaexp.tracking.store import client

    out = tmp_path / "run"
    args = ["+experiment=tnca_bigvgan_fixes", *TINY, violin_path(), "trainer.growth_steps=12", "trainer.lr=5e-3",
            "trainer.log_every_n_steps=5",
            "trainer.image_every=30", "trainer.checkpoint_every=10"]
    assert main(["train", *args, "trainer.steps=30", f"hydra.run.dir={out}"]) == 0
    cl = client(mlflow_uri)
    run = cl.search_runs([cl.get_experiment_by_name("aaexp-tnca").experiment_id])[0]
    assert run.info.status == "FINISHED"
    hist = [m.value for m in sorted(cl.get_metric_history(run.info.run_id, "loss/total"), key=lambda m: m.step)]
    assert len(hist) == 7 and hist[-1] < 0.5 * hist[0]  # iterations 1, 5, ..., 30; measured 4.07 -> 1.16
    edge = cl.get_metric_history(run.info.run_id, "edge/edge_db")
    assert len(edge) == 7 and all(np.isfinite(m.value) for m in edge)
    arts = {a.path for d in ["audio", "plots", "model", "plots/growth"] for a in cl.list_artifacts(run.info.run_id, d)}
    assert {"audio/grown.wav", "audio/target_vocoded.wav", "plots/final.png", "plots/growth.gif", "model/nca.pt",
            "plots/growth/iter_000030.png", "plots/loss.png"} <= arts
    # The logged measures are those of the written file, measured again from disk.
    audio, sr = load_audio(out / "grown.wav", mono=False)
    want = describe(audio, sr, {"centroid": {"n_fft": 2048, "hop_length": 512}})["rms"]
    assert run.data.metrics["audio/rms"] == pytest.approx(want, rel=1e-6)
    violin, vsr = load_audio(shared_data / "tnca" / "violin.wav", mono=False)
    crop = violin[:, : round(0.2 * vsr)].mean(axis=0)  # the reference is the segment that was learned
    assert run.data.metrics["reference/rms"] == pytest.approx(float(np.sqrt(np.mean(crop**2))), rel=1e-9)
    assert run.data.tags["tnca.contract"] == "bigvgan_v2_22khz_80band_256x"

    # resume=<run dir> continues the same MLflow run from the last checkpoint (iteration 30).
    assert torch.load(out / study.CHECKPOINT, weights_only=True)["state"]["step"] == 30
    assert main(["train", *args, "trainer.steps=34", f"resume={out}", f"hydra.run.dir={tmp_path / 'other'}"]) == 0
    assert torch.load(out / study.CHECKPOINT, weights_only=True)["state"]["step"] == 34
    runs = cl.search_runs([cl.get_experiment_by_name("aaexp-tnca").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    steps = sorted(m.step for m in cl.get_metric_history(run.info.run_id, "loss/total"))
    assert steps == [1, 5, 10, 15, 20, 25, 30, 34]

    # Runs with several outputs finish too (one comparison row per output, mixed vocoding).
    for exp, extra in [("tnca_multiscale", []), ("tnca_dual", ["model.vocoder.source=mix"])]:
        assert main(["train", f"+experiment={exp}", *TINY, violin_path(), "trainer.steps=1", *extra,
                     f"hydra.run.dir={tmp_path / exp}"]) == 0
        audio, sr = load_audio(tmp_path / exp / "grown.wav")
        assert sr == 22050 and len(audio) == 24 * 256  # 0.2 s padded to 24 frames; BigVGAN framing: hop per frame
    names = {r.info.run_name.split()[0]: r for r in cl.search_runs([cl.get_experiment_by_name("aaexp-tnca").experiment_id])}
    assert all(names[e].info.status == "FINISHED" for e in ["tnca_multiscale", "tnca_dual"])
    assert "final/mel160" in names["tnca_multiscale"].data.metrics and "final/linear" in names["tnca_dual"].data.metrics


def test_missing_data_and_missing_bigvgan_are_one_line_errors(tmp_path, mlflow_uri, capsys, monkeypatch):
    from aaexp.commands.cli import main

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    assert main(["train", "+experiment=tnca_baseline", *TINY, "data.path=nowhere/violin.wav", f"hydra.run.dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("aaexp train: error: data.path=nowhere/violin.wav: file not found")
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    assert main(["train", "+experiment=tnca_bigvgan_fixes", *TINY, "model.vocoder.name=bigvgan",
                 f"model.vocoder.checkpoint_dir={tmp_path / 'ckpt'}", f"hydra.run.dir={tmp_path / 'b'}"]) == 2
    assert "bigvgan_generator.pt" in capsys.readouterr().err.strip().splitlines()[-1]


def test_relative_data_path_falls_back_to_the_repository(tmp_path, monkeypatch, shared_data):
    from aaexp.tnca.audio_io import resolve_path

    if shared_data != DEFAULT:
        pytest.skip(f"the data is not at ../shared/data beside the repository (AAEXP_DATA={shared_data})")
    monkeypatch.chdir(tmp_path)  # ../shared/data is not beside tmp_path; the repo's is found instead
    assert resolve_path("../shared/data/tnca/violin.wav") == (shared_data / "tnca" / "violin.wav").resolve()


class RecordingTracker:
    """Stands in for MLflow in loop-level tests: keeps what would be logged."""

    def __init__(self):
        self.metrics, self.tags = [], {}

    def log_metrics(self, metrics, step=None):
        self.metrics.append((step, dict(metrics)))

    def set_tags(self, tags):
        self.tags.update(tags)

    def log_figure(self, fig, name):
        import matplotlib.pyplot as plt

        plt.close(fig)


@pytest.mark.parametrize("failure", ["nan", "interrupt"])
def test_a_failing_run_keeps_its_finished_iterations(tmp_path, monkeypatch, failure):
    import logging

    from aaexp.core.errors import TrainingDiverged
    from aaexp.training.runner import RunContext

    cfg, s = build("tnca_baseline", "trainer.steps=5", "trainer.checkpoint_every=10", "trainer.log_every_n_steps=1")
    ctx = RunContext(cfg, torch.device("cpu"), RecordingTracker(), tmp_path, False, False, logging.getLogger("t"))
    real, calls = study.compute_loss, []

    def failing(setup, outs):
        calls.append(1)
        terms = real(setup, outs)
        if len(calls) == 3:
            if failure == "interrupt":
                raise KeyboardInterrupt
            terms["loss/total"] = terms["loss/total"] * float("nan")
        return terms

    monkeypatch.setattr(study, "compute_loss", failing)
    with pytest.raises(TrainingDiverged if failure == "nan" else KeyboardInterrupt):
        study.train(ctx, s)
    saved = tmp_path / study.CHECKPOINT
    if failure == "nan":
        assert not saved.exists()  # no checkpoint was due; a diverged state is never saved
    else:
        assert torch.load(saved, weights_only=True)["state"]["step"] == 2  # Ctrl-C keeps the two finished
    assert [step for step, _ in ctx.tracker.metrics] == [1, 2]


def test_a_dead_grid_is_reported(tmp_path):
    import logging

    from aaexp.training.runner import RunContext

    # An alive-channel bias of -1 clamps every alpha to 0 in the first step: nothing lives.
    cfg, s = build("tnca_baseline", "trainer.steps=2", "trainer.log_every_n_steps=1", "model.nca.alpha_bias_init=-1.0")
    ctx = RunContext(cfg, torch.device("cpu"), RecordingTracker(), tmp_path, False, False, logging.getLogger("t"))
    st = study.train(ctx, s)
    assert st.died_at == 1 and ctx.tracker.tags == {"tnca.grid_died_at": 1}
    assert [m["nca/alive_fraction"] for _, m in ctx.tracker.metrics] == [0.0, 0.0]
