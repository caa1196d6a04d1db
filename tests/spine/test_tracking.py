"""MLflow tracking: run contents, sweeps as parent + children, FAILED runs, the report."""

import csv

from .helpers import TOY_CONF, aaexp, runs


def _train(tmp_path, *overrides, multirun=False):
    args = ["train", *(["-m"] if multirun else []), "--config-dir", str(TOY_CONF), "+experiment=toy_fast", *overrides]
    args.append(f"hydra.sweep.dir={tmp_path / 'sweep'}" if multirun else f"hydra.run.dir={tmp_path / 'run'}")
    return aaexp(*args, cwd=tmp_path)


def test_run_logs_config_tags_metrics_and_artifacts(tmp_path, mlflow_uri):
    r = _train(tmp_path)
    assert r.returncode == 0, r.stderr
    [(exp, run)] = runs(mlflow_uri)
    assert exp == "aaexp-toy" and run.info.status == "FINISHED"
    assert run.data.params["toy.lr"] == "0.2" and run.data.params["seed"] == "0"
    tags = run.data.tags
    assert tags["study"] == "toy" and tags["experiment"] == "toy_fast" and tags["device"] == "cpu"
    assert "version.torch" in tags and "version.mlflow" in tags
    from aaexp.tracking import store as tracking

    cl = tracking.client(mlflow_uri)
    assert len(cl.get_metric_history(run.info.run_id, "train/loss")) == 20  # one per step
    arts = {a.path for a in cl.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "weights.txt"} <= arts


def test_same_seed_same_config_gives_identical_metrics(tmp_path, mlflow_uri):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        assert _train(tmp_path / sub, "seed=3").returncode == 0
    a, b = [r.data.metrics for _, r in runs(mlflow_uri)]
    assert a == b


def test_sweep_of_two_gives_parent_and_two_children(tmp_path, mlflow_uri):
    r = _train(tmp_path, "toy.lr=0.1,0.3", multirun=True)
    assert r.returncode == 0, r.stderr
    all_runs = [run for _, run in runs(mlflow_uri)]
    parents = [x for x in all_runs if x.data.tags.get("sweep") == "parent"]
    children = [x for x in all_runs if "mlflow.parentRunId" in x.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert {c.data.params["toy.lr"] for c in children} == {"0.1", "0.3"}
    assert parents[0].info.status == "FINISHED" and parents[0].data.tags["children"] == "2"


def test_four_concurrent_joblib_jobs_on_sqlite(tmp_path, mlflow_uri):
    """The launcher creates the store and the parent first; 4 parallel jobs then only add runs."""
    r = _train(tmp_path, "toy.lr=0.05,0.1,0.2,0.3", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4", multirun=True)
    assert r.returncode == 0, r.stderr
    all_runs = [run for _, run in runs(mlflow_uri)]
    children = [x for x in all_runs if "mlflow.parentRunId" in x.data.tags]
    parents = [x for x in all_runs if x.data.tags.get("sweep") == "parent"]
    assert len(all_runs) == 5 and len(parents) == 1 and len(children) == 4
    assert all(x.info.status == "FINISHED" for x in all_runs)
    assert sorted(c.data.params["toy.lr"] for c in children) == ["0.05", "0.1", "0.2", "0.3"]


def test_failing_run_is_marked_failed_and_keeps_what_it_logged(tmp_path, mlflow_uri):
    r = _train(tmp_path, "toy.fail=true")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == "aaexp train: error: toy study failed on purpose"
    [(_, run)] = runs(mlflow_uri)
    assert run.info.status == "FAILED"
    assert run.data.tags["error"] == "RuntimeError: toy study failed on purpose"
    assert "train/loss" in run.data.metrics and "toy.lr" in run.data.params


def test_report_tables_finished_runs(tmp_path, mlflow_uri):
    assert _train(tmp_path, "toy.lr=0.1,0.3", multirun=True).returncode == 0
    out = tmp_path / "rep"
    r = aaexp("report", "--param", "toy.lr", "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(out / "report.csv")))
    assert sorted(x["toy.lr"] for x in rows) == ["0.1", "0.3"]  # the parent run is not a row
    assert {"eval/err/low", "eval/err/high"} <= set(rows[0])
    assert (out / "report.png").stat().st_size > 1000
    assert "| toy.lr |" in (out / "report.md").read_text().replace("| run | run_id | experiment ", "")


def test_tracking_uri_override_beats_environment(tmp_path, mlflow_uri):
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert _train(tmp_path, f"tracking.uri={other}").returncode == 0
    assert len(runs(other)) == 1 and runs(mlflow_uri) == []


def test_resume_true_reopens_the_newest_unfinished_run(tmp_path, mlflow_uri):
    assert _train(tmp_path, "toy.fail=true").returncode == 1
    [(_, failed)] = runs(mlflow_uri)
    r = aaexp("train", "--config-dir", str(TOY_CONF), "+experiment=toy_fast", "resume=true", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    [(_, resumed)] = runs(mlflow_uri)  # the same run, not a new one
    assert resumed.info.run_id == failed.info.run_id and resumed.info.status == "FINISHED"
    assert (tmp_path / "run" / "weights.txt").is_file()  # it wrote into the interrupted run's folder


def test_resume_of_a_folder_that_is_no_run_is_one_line(tmp_path, mlflow_uri):
    r = aaexp("train", "--config-dir", str(TOY_CONF), "+experiment=toy_fast", f"resume={tmp_path}", cwd=tmp_path)
    assert r.returncode == 2 and "not a run directory" in r.stderr.strip().splitlines()[-1]
