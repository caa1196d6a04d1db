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
    proc = subprocess.Popen(
        [sys.executable, "-m", "aaexp.cli", "server", "--port", str(port), "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
         "--artifacts-destination", str(store / "artifacts")],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        first = proc.stdout.readline()
        assert uri in first, first
        deadline = time.time() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited: {proc.stdout.read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if time.time() > deadline:
                    pytest.fail("mlflow server did not answer /health within 180 s")
                time.sleep(1)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        yield uri, store
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=60)


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
