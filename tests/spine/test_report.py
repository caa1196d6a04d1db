"""`aaexp report` layout: band order, thresholds and legend labels (no MLflow needed)."""

from types import SimpleNamespace

from aaexp.commands.report_runs import Layout, short_labels


def run(**params):
    return SimpleNamespace(data=SimpleNamespace(params=params))


def test_bands_sort_by_their_lower_edge_and_all_comes_last():
    runs = [run(**{"eval.bands.20-500": "[20.0, 500.0]", "eval.bands.2k-8k": "[2000.0, 8000.0]",
                   "eval.bands.12k-20k": "[12000.0, 20000.0]", "eval.bands.500-2k": "[500.0, 2000.0]",
                   "eval.thresholds.nmr_s_db": "-10.0", "eval.thresholds.hesr_r_db": "-15.0", "loss.lam": "0.3"})]
    layout = Layout.from_params(runs)
    names = ["eval/nmr_s/all", "eval/nmr_s/12k-20k", "eval/nmr_s/20-500", "eval/nmr_s/2k-8k", "eval/nmr_s/500-2k",
             "eval/hesr_r/2k-8k", "eval/hesr_r/20-500"]
    assert sorted(names, key=layout.sort_key) == [
        "eval/hesr_r/20-500", "eval/hesr_r/2k-8k",
        "eval/nmr_s/20-500", "eval/nmr_s/500-2k", "eval/nmr_s/2k-8k", "eval/nmr_s/12k-20k", "eval/nmr_s/all"]
    assert layout.thresholds == {"nmr_s": -10.0, "hesr_r": -15.0}


def test_params_of_other_shapes_are_ignored():
    layout = Layout.from_params([run(**{"eval.bands.x": "not json", "eval.thresholds.y_db": "n/a"})])
    assert layout.band_lo == {} and layout.thresholds == {}
    assert sorted(["a/zeta", "a/all", "a/alpha"], key=layout.sort_key) == ["a/alpha", "a/zeta", "a/all"]


def test_short_labels_drop_shared_overrides_and_shorten_paths():
    names = ["baseline trainer=quick", "baseline loss.lam=0.1 trainer=QUICK model.baseline.path=/w/runs/baseline",
             "harmonic trainer=quick model.baseline.path=/w/runs/baseline"]
    assert short_labels(names) == ["baseline", "baseline loss.lam=0.1 model.baseline.path=…/baseline",
                                   "harmonic model.baseline.path=…/baseline"]
