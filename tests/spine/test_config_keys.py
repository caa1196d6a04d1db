"""Config files of every group, and the command line: made only of keys the packaged defaults know;
experiment and recipe files short and resolvable."""

from __future__ import annotations

import shutil

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from aaexp.core.config import CONF_DIR, available
from aaexp.core.config_keys import check_keys
from aaexp.core.errors import AaexpError
from tests.spine.helpers import runs


def _checked(overrides: list[str], config_dir=CONF_DIR):
    with initialize_config_dir(str(config_dir), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        check_keys(cfg)
        return cfg


@pytest.mark.parametrize("name", available("experiment"))
def test_every_experiment_is_short_resolves_and_has_only_known_keys(name):
    text = (CONF_DIR / "experiment" / f"{name}.yaml").read_text()
    assert len(text.splitlines()) < 30, f"{name}.yaml: a newcomer should read an experiment in under 30 lines"
    cfg = _checked([f"+experiment={name}"])
    cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    OmegaConf.to_container(cfg, resolve=True)        # every interpolation resolves


@pytest.mark.parametrize("recipe", available("recipe"))
def test_recipes_compose_with_the_roadmap_experiments(recipe):
    cfg = _checked(["+experiment=lambda_0.3", f"recipe={recipe}"])
    assert cfg.loss.lam == 0.3 and cfg.model.dtype == "float32"   # the experiment's λ, the recipe's precision


def test_a_misspelt_key_in_an_experiment_file_is_named_with_its_file(tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "typo.yaml").write_text("# @package _global_\nloss:\n  lamm: 0.3\n")
    with pytest.raises(AaexpError, match=r"unknown config key loss\.lamm, set in .*typo\.yaml"):
        _checked(["+experiment=typo"], config_dir=_merged_conf(tmp_path))


def test_keys_added_on_the_command_line_with_plus_stay_allowed():
    cfg = _checked(["+experiment=baseline", "+loss.my_note=1"])
    assert cfg.loss.my_note == 1


def _merged_conf(extra):
    """A config folder holding the packaged tree plus `extra`'s files (the --config-dir situation)."""
    root = extra / "conf"
    shutil.copytree(CONF_DIR, root)
    shutil.copytree(extra / "experiment", root / "experiment", dirs_exist_ok=True)
    return root


# (group file, overrides that choose it, the misspelt key appended to it, as the run sees it).
# Global files (study, recipe, hparams_search) put keys at the root: a misspelt `seed`.
GROUP_FILES = [
    ("data/tones.yaml", [], "midi_mxa: 100", "data.midi_mxa"),
    ("loss/aa.yaml", [], "nmr_fomr: db", "loss.nmr_fomr"),
    ("model/nam_teacher.yaml", [], "dtpye: float32", "model.dtpye"),
    ("eval/aa.yaml", [], "windows_s: 0.5", "eval.windows_s"),
    ("tracking/mlflow.yaml", [], "experiment_nmae: x", "tracking.experiment_nmae"),
    ("trainer/quick.yaml", ["trainer=quick"], "profil: quick", "trainer.profil"),
    ("trainer_profile/aa_default.yaml", [], "max_epoch: 3", "trainer.max_epoch"),
    ("trainer_profile/eq_quick.yaml", ["study=eq", "trainer=quick"], "epoch: 3", "trainer.epoch"),
    ("model/eq_v1.yaml", ["study=eq", "model=eq_v1"], "head_unit: plugin", "model.head_unit"),
    ("loss/tnca.yaml", ["study=tnca"], "l1_wieght: 1.0", "loss.l1_wieght"),
    ("study/aa.yaml", [], "sede: 1", "sede"),
    ("recipe/fast.yaml", ["recipe=fast"], "sede: 1", "sede"),
    ("hparams_search/lambda_grid.yaml", ["hparams_search=lambda_grid"], "sede: 1", "sede"),
]


@pytest.mark.parametrize("rel, overrides, line, key", GROUP_FILES, ids=[g[0] for g in GROUP_FILES])
def test_a_misspelt_key_in_any_group_file_is_named_with_its_file(tmp_path, rel, overrides, line, key):
    root = tmp_path / "conf"
    shutil.copytree(CONF_DIR, root)
    _checked(overrides, config_dir=root)  # the copy as packaged is fine ...
    with open(root / rel, "a") as fh:
        fh.write(f"\n{line}\n")
    with pytest.raises(AaexpError) as err:  # ... and one misspelt key in it is named with its file
        _checked(overrides, config_dir=root)
    assert str(err.value) == (f"unknown config key {key}, set in {root / rel}: no such key in the defaults; "
                              "check its spelling")


STUDY_OPTIONS = {"aa": {"model": ["nam_teacher"], "data": ["tones"], "loss": ["aa"], "eval": ["aa"]},
                 "eq": {"model": ["eq_v1", "eq_v2"], "data": ["eq_safe"], "loss": ["eq", "eq_v1"], "eval": ["eq"]},
                 "tnca": {"model": ["tnca_nca"], "data": ["tnca_violin"], "loss": ["tnca"], "eval": ["tnca"]}}


@pytest.mark.parametrize("study", STUDY_OPTIONS)
def test_every_packaged_option_of_a_study_has_only_known_keys(study):
    assert {g: sorted(o) for g, o in STUDY_OPTIONS[study].items()} == {
        g: sorted(o) for g, o in STUDY_OPTIONS[study].items() if set(o) <= set(available(g))}
    for trainer in ("default", "quick"):
        for group, names in STUDY_OPTIONS[study].items():
            for name in names:
                _checked([f"study={study}", f"trainer={trainer}", f"{group}={name}"])


def test_a_misspelt_key_stops_aaexp_train_before_any_work(tmp_path, mlflow_uri, capsys):
    """In a group file given with --config-dir (a copy of loss/aa.yaml, chosen with loss=), and on
    the command line: exit 2, one line naming the key and where it was set, no MLflow run, no
    targets computed, no run folder claimed."""
    from aaexp.commands import cli

    (tmp_path / "conf" / "loss").mkdir(parents=True)
    mine = tmp_path / "conf" / "loss" / "mine.yaml"
    mine.write_text((CONF_DIR / "loss" / "aa.yaml").read_text().replace("nmr_form:", "nmr_fomr:"))
    cache, run_dir = tmp_path / "cache", tmp_path / "run"
    for args, key, where in ((["--config-dir", str(tmp_path / "conf"), "loss=mine"], "loss.nmr_fomr", f"set in {mine}:"),
                             (["loss.lamm=0.3"], "loss.lamm", "set on the command line")):
        rc = cli.main(["train", *args, f"data.cache_dir={cache}", f"hydra.run.dir={run_dir}"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and f"unknown config key {key}, {where}" in err[0], err
    assert runs(mlflow_uri) == [] and not cache.exists() and not (run_dir / "mlflow_run_id.txt").exists()
