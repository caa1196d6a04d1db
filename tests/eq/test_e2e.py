"""End to end through `aaexp train`: V2 decodes valid settings, V1 reproduces the MHz failure."""

import numpy as np
import pytest

from aaexp.commands import cli
from aaexp.eq.model_file import load_model
from aaexp.eq.study import MODEL_FILE
from aaexp.tracking import store as tracking

# The SAFE plugin's ranges as SOURCE.md states them, written out here independently of the config.
FREQ_RANGES = [(22, 1000), (82, 3900), (180, 4700), (220, 10000), (580, 20000)]


def _inside_plugin(p: np.ndarray) -> bool:
    gains, freqs, qs = p[[0, 2, 5, 8, 11]], p[[1, 3, 6, 9, 12]], p[[4, 7, 10]]
    return bool((np.abs(gains) <= 12 + 1e-6).all() and (qs >= 0.1 - 1e-6).all() and (qs <= 10 + 1e-6).all()
                and all(lo * (1 - 1e-6) <= f <= hi * (1 + 1e-6) for f, (lo, hi) in zip(freqs, FREQ_RANGES)))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store for this module's runs (creating one costs seconds); each test reads its own run."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.delenv("AAEXP_PARENT_RUN_ID", raising=False)
        yield uri


def _train(tmp_path, *overrides):
    assert cli.main(["train", *overrides, "trainer=quick", "progress=false", f"hydra.run.dir={tmp_path}"]) == 0
    cl = tracking.client()
    exp_id = cl.get_experiment_by_name("aaexp-eq").experiment_id
    run = cl.search_runs([exp_id], f"tags.out_dir = '{tmp_path.resolve()}'")[0]
    return cl, run


@pytest.mark.slow
def test_quick_v2_on_synthetic_data_decodes_only_valid_settings(tmp_path, store):
    cl, run = _train(tmp_path, "+experiment=eq_v2")
    m = run.data.metrics
    assert run.info.status == "FINISHED" and run.data.tags["eq.model"] == "eq_v2"
    assert m["eval/valid_share/centroids"] == 1.0 and m["eval/valid_share/interp"] == 1.0 and m["eval/valid_share/val"] == 1.0
    assert m["train/contrastive_weight"] == pytest.approx(0.5)  # annealed to its end value at the last epoch
    arts = {a.path for a in cl.list_artifacts(run.info.run_id)}
    arts |= {a.path for d in ("plots", "tables") for a in cl.list_artifacts(run.info.run_id, d)}
    assert {"plots/eq_responses.png", "plots/latent_pca.png", "plots/losses.png", "tables/decoded.md",
            "tables/interpolation.md", "results.json", MODEL_FILE} <= arts
    # The exported model, read back, decodes every descriptor and the warm -> bright path inside the plugin ranges.
    trained = load_model(tmp_path / MODEL_FILE)
    assert {"warm", "bright"} <= set(trained.centroids)
    z = np.stack(list(trained.centroids.values()))
    alphas = np.linspace(0, 1, 5)[:, None]
    path = (1 - alphas) * trained.centroids["warm"] + alphas * trained.centroids["bright"]
    assert all(_inside_plugin(p) for p in trained.decode(np.concatenate([z, path])))
    # the semantic check on the synthetic clusters: warm tilts low, bright tilts high
    assert m["eval/semantic/warm_tilt_db"] > 0 and m["eval/semantic/bright_tilt_db"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("exp", ["eq_v1", "eq_v2"])
def test_on_safe_db_v1_decodes_impossible_frequencies_and_v2_does_not(tmp_path, store, shared_data, exp):
    cl, run = _train(tmp_path, f"+experiment={exp}", f"data.path={shared_data / 'safe' / 'SAFEEqualiserUserData.csv'}")
    m = run.data.metrics
    assert m["data/rows_read"] == 1700 and m["data/descriptors"] == 14
    trained = load_model(tmp_path / MODEL_FILE)
    warm = trained.decode(trained.centroids["warm"][None])[0]
    if exp == "eq_v1":
        assert warm[12] > 20000 and not _inside_plugin(warm)          # band-5 frequency beyond the plugin (MHz)
        assert m["eval/valid_share/centroids"] == 0.0 and m["eval/decoded_freq_hz/max"] > 1e5
        assert run.data.tags["verdict"].startswith("INVALID")
    else:
        assert _inside_plugin(warm) and m["eval/valid_share/centroids"] == 1.0
        assert m["eval/decoded_freq_hz/max"] <= 20000


@pytest.mark.slow
def test_missing_data_file_is_a_one_line_error(tmp_path, store, capsys, monkeypatch):
    # A fresh process: cli.main sets HYDRA_FULL_ERROR=1 and later calls in one process read it as --debug.
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    code = cli.main(["train", "+experiment=eq_v2", "trainer=quick", "data.path=no/such/safe.csv", f"hydra.run.dir={tmp_path}"])
    err = capsys.readouterr().err
    ours = [line for line in err.splitlines() if line.startswith("aaexp train: error:")]
    assert code == 2 and len(ours) == 1 and "no such file" in ours[0] and "Traceback" not in err
