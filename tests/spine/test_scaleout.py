"""Scale-out: one real MLflow tracking server (`aaexp server`) that sweep jobs in other processes log to."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from .helpers import REPO, TOY_CONF, aaexp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path, monkeypatch):
    """`aaexp server` on 127.0.0.1 (a free port), its store and artifacts in tmp_path; stopped afterwards."""
    monkeypatch.delenv("AAEXP_PARENT_RUN_ID", raising=False)
    port = _free_port()
    store = tmp_path / "server"
    logfile = open(tmp_path / "server.log", "w+")  # a file, not a pipe: an undrained pipe fills and stalls the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "aaexp.cli", "server", "--port", str(port), "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
         "--artifacts-destination", str(store / "artifacts")],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=logfile, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited: {(tmp_path / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if time.time() > deadline:
                    pytest.fail(f"mlflow server did not answer /health within 300 s: {(tmp_path / 'server.log').read_text()[-2000:]}")
                time.sleep(1)
        first = (tmp_path / "server.log").read_text().splitlines()[0]
        assert f"export MLFLOW_TRACKING_URI={uri}" in (tmp_path / "server.log").read_text() and uri in first, first
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        yield uri, store
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # a loaded machine can take longer to shut uvicorn down
            os.killpg(proc.pid, 9)
            proc.wait(timeout=30)
        logfile.close()


def _sweep_runs(uri):
    from aaexp import tracking

    cl = tracking.client(uri)
    exp = cl.get_experiment_by_name("aaexp-toy")
    all_runs = cl.search_runs([exp.experiment_id])
    parents = [r for r in all_runs if r.data.tags.get("sweep") == "parent"]
    children = [r for r in all_runs if "mlflow.parentRunId" in r.data.tags]
    return cl, parents, children


def _assert_one_parent_two_children(uri):
    cl, parents, children = _sweep_runs(uri)
    assert len(parents) == 1 and len(children) == 2
    [parent] = parents
    assert parent.info.status == "FINISHED" and parent.data.tags["children"] == "2"
    for c in children:
        assert c.info.status == "FINISHED"
        assert c.data.tags["mlflow.parentRunId"] == parent.info.run_id
        # the id reached the job through its own config, not through this process's memory
        assert c.data.params["tracking.parent_run_id"] == parent.info.run_id
        assert "final/loss" in c.data.metrics and "tracking.parent_run_id" not in c.data.tags["overrides"]
        assert "weights.txt" in {a.path for a in cl.list_artifacts(c.info.run_id)}  # uploaded through the server
    assert sorted(c.data.params["toy.lr"] for c in children) == ["0.1", "0.3"]


@pytest.mark.slow
def test_joblib_sweep_logs_parent_and_children_to_the_tracking_server(tmp_path, mlflow_server):
    uri, store = mlflow_server
    r = aaexp("train", "-m", "--config-dir", str(TOY_CONF), "+experiment=toy_fast", "toy.lr=0.1,0.3",
              "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    _assert_one_parent_two_children(uri)
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to a local store
    assert any((store / "artifacts").rglob("weights.txt"))


def test_server_refuses_bad_input_in_one_line(tmp_path):
    for args, needle in ((["--port", "70000"], "not a TCP port"),
                         (["--backend-store-uri", "http://x:5000"], "that is a server")):
        r = aaexp("server", *args, cwd=tmp_path, timeout=60)
        assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def _completed_trials(db) -> int:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:  # not created yet, or being written
        return 0


@pytest.mark.slow
def test_optuna_search_interrupted_after_two_trials_resumes_to_three(tmp_path, mlflow_uri):
    """SIGTERM (a SLURM pre-emption) after trial 2; the same command again runs the one trial left."""
    optuna = pytest.importorskip("optuna", reason="Optuna is an extra: pip install -e '.[optuna]'")
    from aaexp import tracking

    cmd = ["train", "--config-dir", str(TOY_CONF), "+experiment=toy_fast", "hparams_search=optuna_toy",
           f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.Popen([sys.executable, "-m", "aaexp.cli", *cmd, "toy.step_sleep_s=0.1"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    db = tmp_path / "optuna.db"
    deadline = time.time() + 300
    while _completed_trials(db) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, 15)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out[-3000:]
    assert _completed_trials(db) == 2, out[-3000:]

    r = aaexp(*cmd, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "2 of 3 trials done, running 1" in r.stdout
    study = optuna.load_study(study_name="toy-search", storage=f"sqlite:///{db}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 3  # not 2 + 3
    best = study.best_trial
    assert f"best trial {best.number}: eval/err/* = " in r.stdout and f"toy.lr={best.params['toy.lr']}" in r.stdout
    cl = tracking.client(mlflow_uri)
    exp = cl.get_experiment_by_name("aaexp-toy")
    parents = cl.search_runs([exp.experiment_id], "tags.sweep = 'parent'", order_by=["attributes.start_time DESC"])
    assert [p.info.status for p in parents] == ["FINISHED", "FAILED"]  # the resumed search, the interrupted one
    tags = parents[0].data.tags
    assert tags["best.toy.lr"] == str(best.params["toy.lr"]) and tags["optuna.best_trial"] == str(best.number)
    children = cl.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'")
    assert len(children) == 1 and children[0].info.status == "FINISHED"
    # each child's objective is the worst of its eval/err/* metrics
    [t3] = [t for t in done if t.number == max(x.number for x in done)]
    m = children[0].data.metrics
    assert t3.value == pytest.approx(max(m["eval/err/low"], m["eval/err/high"]))


def test_aa_objective_is_excess_db_else_the_worst_band_margin():
    from aaexp.errors import AaexpError
    from aaexp.search import aa_excess, eq_quality, objective_value

    assert aa_excess({"eval/excess_db": -2.5, "eval/nmr_s/2k-8k": 30.0}) == -2.5
    bands = {"eval/nmr_s/20-500": -14.0, "eval/nmr_s/12k-20k": float("nan"), "eval/hesr_r/20-500": -12.0,
             "eval/hesr_r/2k-8k": -20.0, "eval/teacher/nmr_s/20-500": 50.0}
    assert aa_excess(bands) == pytest.approx(3.0)       # HESR-R −12 is 3 dB over its −15 line; NaN bands ignored
    assert aa_excess({**bands, "eval/excess_db": float("nan")}) == pytest.approx(3.0)
    assert eq_quality({"eval/silhouette/all": 0.4, "eval/valid_share/centroids": 0.75}) == pytest.approx(-0.15)
    assert objective_value("eval/err/*", {"eval/err/a": 1.0, "eval/err/b": 2.0, "train/loss": 9.0}) == 2.0
    with pytest.raises(AaexpError, match="neither eval/excess_db"):
        aa_excess({"train/loss": 1.0})


@pytest.mark.slow
def test_local_submitit_sweep_logs_parent_and_children_to_the_tracking_server(tmp_path, mlflow_server):
    """Each job a separate process started by submitit from a pickle, as on SLURM."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="submitit launcher is an extra: pip install -e '.[slurm]'")
    uri, store = mlflow_server
    r = aaexp("train", "-m", "--config-dir", str(TOY_CONF), "+experiment=toy_fast", "toy.lr=0.1,0.3",
              "hydra/launcher=local_submitit", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    _assert_one_parent_two_children(uri)
    assert list((tmp_path / "sweep" / ".submitit").iterdir())  # the jobs did go through submitit
