"""Experiment and recipe files: short, resolvable, and made only of keys the defaults know."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from aaexp.config import CONF_DIR, available
from aaexp.config_keys import check_keys
from aaexp.errors import AaexpError


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
    import shutil

    root = extra / "conf"
    shutil.copytree(CONF_DIR, root)
    shutil.copytree(extra / "experiment", root / "experiment", dirs_exist_ok=True)
    return root
