"""Scale-out: one real MLflow tracking server (`aaexp server`) that sweep jobs in other processes log to."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .helpers import AAEXP, REPO, TOY_CONF, aaexp


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
        [sys.executable, "-m", "aaexp.commands.cli", "server", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}", "--artifacts-destination", str(store / "artifacts")],
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
    from aaexp.tracking import store as tracking

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
    from aaexp.tracking import store as tracking

    cmd = ["train", "--config-dir", str(TOY_CONF), "+experiment=toy_fast", "hparams_search=optuna_toy",
           f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.Popen([sys.executable, "-m", "aaexp.commands.cli", *cmd, "toy.step_sleep_s=0.1"], cwd=tmp_path, env=env,
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
    from aaexp.commands.search import aa_excess, eq_quality, objective_value
    from aaexp.core.errors import AaexpError

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


# -- Ray: aaexp's own launcher (hydra_plugins/aaexp_ray) --------------------------------------------------
AA_TINY = ["trainer=quick", "trainer.train_tones=8", "trainer.val_tones=3", "trainer.batch_size=4", "trainer.val_batch_size=3",
           "trainer.tone_seconds=0.13", "trainer.window_seconds=0.07", "trainer.max_epochs=1", "eval.tones.n=4", "eval.window_s=0.1",
           "eval.warmup.min_s=0.05", "eval.sweep.seconds=0.2", "eval.plots=false", "progress=false"]


@pytest.mark.slow
def test_ray_sweep_logs_parent_and_children_to_the_tracking_server_and_computes_targets_once(tmp_path, mlflow_server):
    """Two AA jobs at once, each a Ray task in a worker process of a local Ray started by the launcher."""
    pytest.importorskip("ray", reason="Ray is an extra: pip install -e '.[ray]'")
    from aaexp.tracking import store as tracking

    uri, store = mlflow_server
    cache = tmp_path / "cache"
    r = aaexp("train", "-m", "+experiment=baseline", "loss.lam=0.3,3.0", *AA_TINY, f"data.cache_dir={cache}",
              "hydra/launcher=ray", "hydra.launcher.num_cpus=2", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert "Ray launcher: 2 jobs on a local Ray" in out and "(_run_one pid=" in out  # the jobs ran as Ray tasks
    cl = tracking.client(uri)
    exp = cl.get_experiment_by_name("aaexp-aa")
    all_runs = cl.search_runs([exp.experiment_id])
    parents = [x for x in all_runs if x.data.tags.get("sweep") == "parent"]
    children = [x for x in all_runs if "mlflow.parentRunId" in x.data.tags]
    assert len(parents) == 1 and len(children) == 2
    [parent] = parents
    assert parent.info.status == "FINISHED" and parent.data.tags["children"] == "2"
    for c in children:
        assert c.info.status == "FINISHED" and c.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert c.data.params["tracking.parent_run_id"] == parent.info.run_id
        assert any(k.startswith("eval/") for k in c.data.metrics) and "train/loss" in c.data.metrics
    assert sorted(c.data.params["loss.lam"] for c in children) == ["0.3", "3.0"]
    # two jobs asked for the same targets at once: one computed them, the other waited and read them
    assert sorted(c.data.tags["data.cache"] for c in children) == ["hit", "miss"]
    assert len(list(cache.glob("*.pt"))) == 1
    assert not (tmp_path / "mlflow.db").exists()



# -- SLURM: hydra/launcher=slurm (submitit) ----------------------------------------------------------------
SLURM_LOCAL = ["hydra/launcher=slurm", "hydra.launcher.partition=local", "hydra.launcher.gpus_per_task=null",
               "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=10",
               "hydra.launcher.array_parallelism=2"]


@pytest.fixture
def local_slurm(monkeypatch):
    """A one-node SLURM cluster on this machine (scripts/local_slurm.sh: munged, slurmctld, slurmd), stopped afterwards."""
    import shutil
    import tempfile

    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="submitit launcher is an extra: pip install -e '.[slurm]'")
    missing = [b for b in ("slurmctld", "slurmd", "sbatch", "munged") if shutil.which(b) is None]
    if missing:
        pytest.skip(f"no SLURM here ({', '.join(missing)} not found): apt-get install -y slurm-wlm munge")
    if os.geteuid() != 0:
        pytest.skip("a local slurmd must run as root")
    folder = tempfile.mkdtemp(prefix="aaexp-slurm-")  # short: munge's socket path must fit a sockaddr_un
    env = {**os.environ, "AAEXP_SLURM_DIR": folder, "AAEXP_SLURMCTLD_PORT": str(_free_port()), "AAEXP_SLURMD_PORT": str(_free_port())}
    script = REPO / "scripts" / "local_slurm.sh"
    r = subprocess.run(["bash", str(script), "start"], env=env, capture_output=True, text=True, timeout=120)
    try:
        if r.returncode != 0:
            logs = "".join(p.read_text()[-1500:] for p in sorted((Path(folder) / "log").glob("*.log")))
            pytest.fail(f"local SLURM did not start: {r.stderr}\n{logs}")
        conf = r.stdout.strip().split("SLURM_CONF=")[-1]
        monkeypatch.setenv("SLURM_CONF", conf)  # sbatch, squeue, scancel (and so submitit) find this cluster
        yield conf
    finally:
        subprocess.run(["bash", str(script), "stop"], env=env, capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_slurm_sweep_logs_parent_and_children_to_the_tracking_server(tmp_path, mlflow_server, local_slurm):
    """Two jobs as one sbatch array on a real (one-node) SLURM; each logs to the server as a child of the sweep."""
    uri, store = mlflow_server
    r = aaexp("train", "-m", "--config-dir", str(TOY_CONF), "+experiment=toy_fast", "toy.lr=0.1,0.3", *SLURM_LOCAL,
              f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    _assert_one_parent_two_children(uri)
    [script] = (tmp_path / "sweep" / ".submitit").glob("*/*_submission.sh")
    assert "#SBATCH --partition=local" in script.read_text() and "#SBATCH --array=0-1%2" in script.read_text()


@pytest.mark.slow
def test_scancel_of_a_slurm_job_marks_its_run_killed_and_keeps_the_checkpoint(tmp_path, mlflow_uri, local_slurm):
    """SLURM's SIGTERM (scancel; a time limit and pre-emption send the same) reaches the run through submitit."""
    from aaexp.tracking import store as tracking

    cmd = [*AAEXP, "train", "-m", "+experiment=baseline", "loss.lam=0.3", *AA_TINY, "trainer.max_epochs=500",
           f"data.cache_dir={tmp_path / 'cache'}", *SLURM_LOCAL, f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    ckpt = tmp_path / "sweep" / "0" / "checkpoints" / "last.pt"
    deadline = time.time() + 400
    while not ckpt.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    try:
        assert ckpt.is_file(), "no checkpoint in time"
        job = subprocess.run(["squeue", "-h", "-o", "%A"], capture_output=True, text=True, check=True).stdout.split()
        subprocess.run(["scancel", *job], check=True)  # SIGCONT + SIGTERM to every step, SIGKILL after KillWait
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    # the job failed with RunTerminated, and the sweep says so (in one line, with 143 like a SIGTERM of its own)
    assert proc.returncode == 143 and "the run was ended by SIGTERM (marked KILLED" in out, out[-3000:]
    cl = tracking.client(mlflow_uri)
    runs = cl.search_runs([cl.get_experiment_by_name("aaexp-aa").experiment_id])
    [child] = [x for x in runs if "mlflow.parentRunId" in x.data.tags]
    [parent] = [x for x in runs if x.data.tags.get("sweep") == "parent"]
    assert child.info.status == "KILLED" and child.data.tags["error"] == "Terminated: SIGTERM"  # not left RUNNING
    assert parent.info.status == "FAILED"
    assert ckpt.is_file()


def test_slurm_launcher_renders_the_sbatch_resources_it_is_given(tmp_path, monkeypatch):
    """hydra/launcher=slurm with overridden resources, through the launcher's own launch() and submitit's
    SlurmExecutor up to the sbatch script it would submit (sbatch itself is never called)."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="submitit launcher is an extra: pip install -e '.[slurm]'")
    import submitit.slurm.slurm as submitit_slurm
    from hydra import compose, initialize_config_dir
    from hydra._internal.callbacks import Callbacks
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import HydraContext
    from hydra.utils import instantiate

    from aaexp.core.config import CONF_DIR

    res = {"partition": "long", "gpus_per_task": 2, "cpus_per_task": 6, "mem_gb": 48, "timeout_min": 90, "array_parallelism": 3}
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                                           *(f"hydra.launcher.{k}={v}" for k, v in res.items())], return_hydra_config=True)
        launcher = instantiate(cfg.hydra.launcher)
        launcher.setup(hydra_context=HydraContext(config_loader=GlobalHydra.instance().config_loader(), callbacks=Callbacks()),
                       task_function=print, config=cfg)

    class Rendered(Exception):
        pass

    scripts = []
    make_text = submitit_slurm.SlurmExecutor._make_submission_file_text

    def render_only(self, command, uid):
        scripts.append(make_text(self, command, uid))
        raise Rendered  # stop before `sbatch`

    monkeypatch.setattr(submitit_slurm.SlurmExecutor, "_make_submission_file_text", render_only)
    with pytest.raises(Rendered):
        launcher.launch([["loss.lam=0.1"], ["loss.lam=0.3"], ["loss.lam=1.0"]], initial_job_idx=0)
    [script] = scripts
    sbatch = {line.split("=", 1)[0].removeprefix("#SBATCH "): line.split("=", 1)[1]
              for line in script.splitlines() if line.startswith("#SBATCH --") and "=" in line}
    assert sbatch["--partition"] == "long"
    assert sbatch["--gpus-per-task"] == "2" and sbatch["--cpus-per-task"] == "6"
    assert sbatch["--mem"] == "48GB" and sbatch["--time"] == "90"
    assert sbatch["--array"] == "0-2%3"  # 3 jobs, at most array_parallelism at once
    assert sbatch["--signal"] == f"USR2@{cfg.hydra.launcher.signal_delay_s}"  # the pre-emption/time-limit signal the runner handles
    assert f"{tmp_path / 'sweep'}/.submitit/%A_%a" in sbatch["--output"]
    assert "submitit.core._submit" in script


# -- Optuna pruning: each trial's job reports its per-step value to the study's storage ------------------------
@pytest.mark.slow
def test_optuna_median_pruner_stops_hopeless_trials_run_by_submitit_jobs(tmp_path, mlflow_uri):
    """4 toy trials, each a separate submitit process; a trial worse than the median of those before it at step 2 stops there."""
    optuna = pytest.importorskip("optuna", reason="Optuna is an extra: pip install -e '.[optuna]'")
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="submitit launcher is an extra: pip install -e '.[slurm]'")
    from aaexp.tracking import store as tracking

    r = aaexp("train", "--config-dir", str(TOY_CONF), "+experiment=toy_fast", "hparams_search=optuna_toy_pruned",
              "hydra/launcher=local_submitit", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    study = optuna.load_study(study_name="toy-pruned", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(study.trials) == 4 and pruned and complete, [(t.number, t.state) for t in study.trials]
    for t in pruned:
        # reported by the job's own process to the shared storage, up to the step where it was stopped
        assert max(t.intermediate_values) == 2 < 20 and f"trial {t.number}: pruned at step 2 (train/loss = " in r.stdout
    assert all(len(t.intermediate_values) == 20 for t in complete)  # ran every step
    cl = tracking.client(mlflow_uri)
    runs = cl.search_runs([cl.get_experiment_by_name("aaexp-toy").experiment_id])
    [parent] = [x for x in runs if x.data.tags.get("sweep") == "parent"]
    children = [x for x in runs if "mlflow.parentRunId" in x.data.tags]
    killed = [c for c in children if c.info.status == "KILLED"]
    assert len(killed) == len(pruned) and all(c.data.tags["optuna_pruned"] == "true" and "error" not in c.data.tags for c in killed)
    assert sorted(float(c.data.params["toy.lr"]) for c in killed) == sorted(t.params["toy.lr"] for t in pruned)
    assert all("final/loss" not in c.data.metrics and len(cl.get_metric_history(c.info.run_id, "train/loss")) == 3 for c in killed)
    assert parent.info.status == "FINISHED" and parent.data.tags["children_pruned"] == str(len(pruned))  # an outcome, not a failure
    assert list((tmp_path / "sweep" / ".submitit").iterdir())


def test_pruner_needs_a_metric_and_a_storage(tmp_path, mlflow_uri):
    for extra, needle in ((["hydra.sweeper.pruner.metric=null"], "pruner.metric"),
                          (["hydra.sweeper.storage=null"], "needs a storage")):
        r = aaexp("train", "--config-dir", str(TOY_CONF), "+experiment=toy_fast", "hparams_search=optuna_toy_pruned", *extra,
                  f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path, timeout=120)
        assert r.returncode == 2 and needle in r.stderr, r.stderr[-2000:]
