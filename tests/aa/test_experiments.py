"""Every roadmap experiment: `aaexp train +experiment=NAME --cfg job` shows what the issue's table says."""

from __future__ import annotations

import contextlib
import io

import pytest
import yaml
from omegaconf import OmegaConf

from aaexp.aa.loss.mix import lambda_at, term_weights
from aaexp.commands import cli
from aaexp.core.config import CONF_DIR

LP_12K = {"passband_hz": 12000.0, "stopband_hz": 16000.0, "attenuation_db": 80.0}
LP_18K = {"passband_hz": 18000.0, "stopband_hz": 22000.0, "attenuation_db": 80.0}
# name -> (esr_normal, nmr) at the first epoch, from the table (three decimals)
WEIGHTS = {"baseline": (0.5, 0.5), "lambda_0.1": (0.909, 0.091), "lambda_0.3": (0.769, 0.231),
           "lambda_0.5": (0.667, 0.333), "lambda_3.0": (0.25, 0.75), "extended_f0": (0.5, 0.5),
           "harmonic": (0.5, 0.5), "combined": (0.769, 0.231), "curriculum": (0.25, 0.75)}


def cfg_job(*args: str) -> dict:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli.main(["train", *args, "--cfg", "job"]) == 0
    return yaml.safe_load(buf.getvalue())


def weights(job: dict, epoch: int = 0) -> dict[str, float]:
    loss = OmegaConf.create(job["loss"])
    return term_weights(loss, lambda_at(loss, epoch, int(job["trainer"]["max_epochs"])))


@pytest.mark.parametrize("name", sorted(WEIGHTS))
def test_experiment_config(name):
    job = cfg_job(f"+experiment={name}")
    loss, data = job["loss"], job["data"]
    assert job["study"]["name"] == "aa"
    w = weights(job)
    assert (round(w["esr_normal"], 3), round(w["nmr"], 3)) == WEIGHTS[name]
    assert w["dc"] == 1.0
    extended = name in ("extended_f0", "combined")
    assert loss["pre_emphasis"]["kind"] == "lp"
    assert loss["pre_emphasis"]["lp"] == (LP_18K if extended else LP_12K)
    assert data["linear_f0_sample"] is extended
    if extended:
        assert (data["f0_min"], data["f0_max"]) == (27.5, 18000.0)
    else:
        assert (data["midi_min"], data["midi_max"]) == (21, 127)
    assert w["harmonic"] == (0.3 if name == "harmonic" else 0.0)
    assert loss["schedule"] == ("curriculum" if name == "curriculum" else "constant")
    if name.startswith("lambda_"):
        assert loss["lam"] == float(name.split("_")[1])


def test_curriculum_runs_3_to_0_3_over_the_profile_epochs():
    job = cfg_job("+experiment=curriculum")
    assert (job["loss"]["lam_start"], job["loss"]["lam_end"]) == (3.0, 0.3)
    assert job["trainer"]["max_epochs"] == 40
    assert [round(lambda_at(OmegaConf.create(job["loss"]), e, 40), 3) for e in (0, 20, 40)] == [3.0, 0.949, 0.3]
    quick = cfg_job("+experiment=curriculum", "trainer=quick")
    assert quick["trainer"]["max_epochs"] < 40  # the profile still shortens an experiment


def test_combined_lambda_is_overridable():
    job = cfg_job("+experiment=combined", "loss.lam=0.5")
    assert job["loss"]["lam"] == 0.5 and job["data"]["linear_f0_sample"] is True
    assert round(weights(job)["nmr"], 3) == 0.333


def test_defaults_are_the_reference_configuration():
    job = cfg_job()
    t, d = job["trainer"], job["data"]
    assert (t["max_epochs"], t["train_tones"], t["val_tones"], t["tone_seconds"], t["lr"]) == (40, 1600, 88, 1.2, 5e-4)
    assert (d["val_midi_min"], d["val_midi_max"], d["val_db"], d["level_sampling"]) == (21, 108, -20.0, "linear")
    assert job["model"]["dtype"] == "float64" and job["model"]["tbptt"]["lstm"] == 4410


def test_experiment_files_are_short_and_show_their_command():
    for name in WEIGHTS:
        lines = (CONF_DIR / "experiment" / f"{name}.yaml").read_text().splitlines()
        assert len(lines) < 30, name
        assert lines[0] == "# @package _global_" and f"+experiment={name}" in lines[1]
