"""Issue 13.7: clustering scores of one descriptor do not exist; say so instead of printing nan."""

import math

import pytest

from aaexp.eq import metrics
from tests.spine.helpers import aaexp, runs


def test_clustering_is_undefined_for_one_descriptor_or_singletons():
    assert "1 descriptor" in metrics.clustering_undefined(["warm"] * 5)
    assert metrics.clustering_undefined(["a", "b", "c"]) is not None
    assert metrics.clustering_undefined(["a", "a", "b"]) is None


@pytest.mark.slow
def test_one_descriptor_csv_reports_why_and_tags_the_nans(tmp_path, mlflow_uri, shared_data):
    rows = [line for line in (shared_data / "safe" / "SAFEEqualiserUserData.csv").read_text().splitlines()
            if line.split(",")[1].strip().lower() == "warm"][:60]
    (tmp_path / "one.csv").write_text("\n".join(rows) + "\n")
    r = aaexp("train", "+experiment=eq_v2", "trainer=quick", "data.path=one.csv", "progress=false",
              f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert "silhouette n/a (undefined: 1 descriptor(s)" in out and "silhouette nan" not in out
    assert "Warning" not in r.stderr, r.stderr  # no library warning about it
    [(_, run)] = runs(mlflow_uri)
    assert math.isnan(run.data.metrics["eval/silhouette/all"]) and math.isnan(run.data.metrics["eval/davies_bouldin/all"])
    assert run.data.tags["undefined.eval/silhouette/all"].startswith("undefined: 1 descriptor(s)")
    assert "n/a (undefined" in run.data.tags["verdict"]
