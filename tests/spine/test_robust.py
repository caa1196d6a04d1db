"""Issue 13: robust where users run it — shared folders, SIGTERM, store races, bad numbers up front."""

import os
import subprocess
import sys
import time

import pytest

from .helpers import AAEXP, REPO, TOY_CONF, aaexp, runs

TOY = ["train", "--config-dir", str(TOY_CONF), "+experiment=toy_fast"]


def _env() -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


# -- 1. a folder of its own per run ------------------------------------------------------------------
@pytest.mark.slow
def test_two_runs_started_together_get_folders_of_their_own(tmp_path, mlflow_uri):
    procs = [subprocess.Popen([*AAEXP, *TOY], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    folders = sorted(p.parent for p in (tmp_path / "outputs" / "toy").glob("*/mlflow_run_id.txt"))
    assert len(folders) == 2
    by_folder = {str(f.resolve()): (f / "mlflow_run_id.txt").read_text().strip() for f in folders}
    store = {r.data.tags["out_dir"]: r.info.run_id for _, r in runs(mlflow_uri)}
    assert by_folder == store  # each folder names its own run, and that run says it lives there


def test_a_folder_that_holds_a_run_is_not_reused(tmp_path, mlflow_uri):
    from aaexp.commands import cli

    out = tmp_path / "mine"
    assert cli.main([*TOY, f"hydra.run.dir={out}"]) == 0
    first = (out / "mlflow_run_id.txt").read_text()
    assert cli.main([*TOY, f"hydra.run.dir={out}"]) == 2
    assert (out / "mlflow_run_id.txt").read_text() == first
    assert [r.info.run_id for _, r in runs(mlflow_uri)] == [first]  # the refused run created nothing


def test_resume_refuses_a_folder_that_belongs_to_another_run(tmp_path, mlflow_uri, capsys):
    from aaexp.commands import cli

    for name in ("a", "b"):
        assert cli.main([*TOY, "toy.fail=true", f"hydra.run.dir={tmp_path / name}"]) == 1
    # What two runs sharing one folder used to leave: b's folder naming a's run.
    (tmp_path / "b" / "mlflow_run_id.txt").write_text((tmp_path / "a" / "mlflow_run_id.txt").read_text())
    capsys.readouterr()
    assert cli.main([*TOY, f"resume={tmp_path / 'b'}", f"hydra.run.dir={tmp_path / 'c'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "belongs to another run" in err[0]
    assert {r.info.status for _, r in runs(mlflow_uri)} == {"FAILED"}  # neither was reopened


# -- 3. schema creation under concurrency -------------------------------------------------------------
CREATE = """
import sys, time
from pathlib import Path
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.01)
from aaexp.tracking import store as tracking
with tracking.start_run("race", "r", "sqlite:///" + sys.argv[2]) as t:
    t.log_metrics({"x": 1.0})
"""


@pytest.mark.slow
def test_processes_racing_to_create_a_new_store_all_record_their_run(tmp_path):
    go, db = tmp_path / "go", tmp_path / "store" / "mlflow.db"
    procs = [subprocess.Popen([sys.executable, "-c", CREATE, str(go), str(db)], env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    time.sleep(3)  # every process imported and waiting, then all start at once
    go.touch()
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    assert len(runs(f"sqlite:///{db}")) == 3


# -- 2. SIGTERM --------------------------------------------------------------------------------------
TINY = ["trainer=quick", "trainer.train_tones=8", "trainer.val_tones=3", "trainer.batch_size=4",
        "trainer.val_batch_size=3", "trainer.tone_seconds=0.13", "trainer.window_seconds=0.07",
        "eval.tones.n=4", "eval.window_s=0.1", "eval.warmup.min_s=0.05", "eval.sweep.seconds=0.2",
        "eval.plots=false", "progress=false"]


@pytest.mark.slow
def test_sigterm_marks_the_run_killed_keeps_the_checkpoint_and_resume_clears_the_error(tmp_path, mlflow_uri):
    out = tmp_path / "run"
    args = ["train", "+experiment=lambda_0.3", *TINY, f"data.cache_dir={tmp_path / 'cache'}"]
    p = subprocess.Popen([*AAEXP, *args, "trainer.max_epochs=500", f"hydra.run.dir={out}"], cwd=tmp_path, env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = out / "checkpoints" / "last.pt"
    deadline = time.time() + 240
    while not ckpt.is_file() and p.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert ckpt.is_file(), p.communicate()[1] if p.poll() is not None else "no checkpoint in time"
    p.terminate()  # SIGTERM, as timeout, SLURM and container stops send it
    _, err = p.communicate(timeout=120)
    assert p.returncode == 128 + 15
    lines = [line for line in err.strip().splitlines() if line.startswith("aaexp")]
    assert len(lines) == 1 and "SIGTERM" in lines[0], err
    [(_, r)] = runs(mlflow_uri)
    assert r.info.status == "KILLED" and "Terminated" in r.data.tags["error"]
    assert ckpt.is_file()
    r2 = aaexp(*args, "trainer.max_epochs=1", "resume=true", f"hydra.run.dir={tmp_path / 'ignored'}", cwd=tmp_path)
    assert r2.returncode == 0, r2.stderr
    [(_, r)] = runs(mlflow_uri)
    assert r.info.status == "FINISHED" and "error" not in r.data.tags


# -- 5. numbers checked before any work ---------------------------------------------------------------
@pytest.mark.parametrize("override, key", [
    ("trainer.batch_size=0", "trainer.batch_size"),
    ("trainer.max_epochs=0", "trainer.max_epochs"),
    ("trainer.lr=-1e-3", "trainer.lr"),
    ("trainer.val_tones=2.5", "trainer.val_tones"),
    ("trainer.tone_seconds=abc", "trainer.tone_seconds"),
])
def test_bad_numbers_are_refused_before_any_work(tmp_path, mlflow_uri, capsys, override, key):
    from aaexp.commands import cli

    cache = tmp_path / "cache"
    rc = cli.main(["train", "+experiment=lambda_0.3", *TINY, override, f"data.cache_dir={cache}",
                   f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and key in err[0], err
    assert runs(mlflow_uri) == [] and not cache.exists()  # no MLflow run, no targets computed
    assert not (tmp_path / "run" / "mlflow_run_id.txt").exists()


@pytest.mark.parametrize("study, override", [("eq", "trainer.checkpoint_every=0"), ("eq", "trainer.batch_size=1"),
                                             ("tnca", "trainer.steps=0"), ("tnca", "trainer.growth_steps=-3"),
                                             ("eq", "trainer.lr_schedule=cosine")])   # EQ has no per-update schedule
def test_every_study_checks_its_numbers(study, override):
    from aaexp.core.checks import check_numbers
    from aaexp.core.config import compose
    from aaexp.core.errors import AaexpError

    with pytest.raises(AaexpError, match=override.split("=")[0].replace(".", r"\.")):
        check_numbers(compose([f"study={study}", override]))


def test_nulls_stay_allowed_where_null_means_none():
    from aaexp.core.checks import check_numbers
    from aaexp.core.config import compose

    for study in ("aa", "eq", "tnca"):
        check_numbers(compose([f"study={study}", "trainer=quick"]))
    check_numbers(compose(["trainer.cpu_threads=null", "trainer.max_time_s=null", "trainer.eval_every_s=null",
                           "trainer.eval_every_n=null", "trainer.max_time_s=0"]))


# -- MLflow UI: the runs table first --------------------------------------------------------------------
def test_experiments_are_created_as_model_training(tmp_path, mlflow_uri):
    from aaexp.commands import cli
    from aaexp.tracking import store as tracking

    assert cli.main([*TOY, f"hydra.run.dir={tmp_path / 'run'}"]) == 0
    exp = tracking.client(mlflow_uri).get_experiment_by_name("aaexp-toy")
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development"
