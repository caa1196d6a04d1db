"""CLI dispatch, Hydra pass-through and one-line errors."""

import pytest

from aaexp.commands import cli

from .helpers import TOY_CONF, aaexp


def test_top_level_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("train", "eval", "report", "ui"):
        assert f"  {name} " in out


def test_unknown_command_is_one_line_exit_2(capsys):
    assert cli.main(["trian"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown command 'trian'" in err


def test_cfg_job_passes_through_to_hydra(tmp_path):
    r = aaexp("train", "--config-dir", str(TOY_CONF), "+experiment=toy_fast", "seed=7", "--cfg", "job")
    assert r.returncode == 0, r.stderr
    assert "seed: 7" in r.stdout and "name: toy" in r.stdout and "lr: 0.2" in r.stdout


def test_train_help_is_hydras():
    r = aaexp("train", "--help")
    assert r.returncode == 0
    assert "aaexp train: run an experiment" in r.stdout and "== Configuration groups ==" in r.stdout
    assert "experiment:" in r.stdout  # groups are listed, so +experiment choices are discoverable


def test_unknown_experiment_lists_available():
    r = aaexp("train", "--config-dir", str(TOY_CONF), "+experiment=nope")
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "unknown experiment 'nope'" in err[0] and "toy_fast" in err[0]


@pytest.mark.parametrize("override", ["no_such_key=1", "trainer=nonexistent", "seed=[unclosed"])
def test_bad_override_is_one_line_exit_2(override):
    r = aaexp("train", "--config-dir", str(TOY_CONF), "+experiment=toy_fast", override)
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("aaexp train: error:"), r.stderr


def test_debug_shows_traceback():
    r = aaexp("--debug", "report", "--tracking-uri", "sqlite:////nonexistent-dir/x/mlflow.db")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_cli_leaves_hydra_full_error_as_it_found_it(monkeypatch, capsys):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    import os

    with pytest.raises(SystemExit):  # argparse: no model or audio given
        cli.main(["eval"])
    assert "HYDRA_FULL_ERROR" not in os.environ
    assert "--eq-model" in capsys.readouterr().err


def test_eval_finds_the_evaluator_of_a_study_added_with_config_dir(tmp_path):
    """A study plugged in with --config-dir can evaluate, not only train (its study.eval_cli is found)."""
    r = aaexp("eval", "--config-dir", str(TOY_CONF), "--toy-line", "3", "2")
    assert r.returncode == 0, r.stderr
    assert "toy mse 1.000000" in r.stdout          # (3-3)²/3 + (2-1)² = 1, by hand
    r = aaexp("eval", "--toy-line", "3", "2")        # without the folder the flag is unknown
    assert r.returncode == 2 and "--toy-line" in r.stderr
    r = aaexp("eval", f"--config-dir={tmp_path}", "--toy-line", "3", "2")
    assert r.returncode == 2 and "no study/ folder" in r.stderr
