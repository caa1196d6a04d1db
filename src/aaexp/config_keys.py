"""Unknown keys in experiment and recipe files: one clear error naming the key and the file.

Hydra refuses an unknown `key=value` on the command line, but a YAML file merged with `+experiment=`
(or a `recipe=`) adds any key silently, so `loss: {lamm: 0.3}` would train with the default λ. Before
any work, the run's config is compared with the same groups composed *without* those files: a leaf
key that only the files brought in is a misspelling (`+key=value` on the command line stays allowed,
it says it adds).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from aaexp.config import CONF_DIR, flatten
from aaexp.errors import AaexpError

CHECKED_GROUPS = ("experiment", "recipe")   # file-level overlays that may set keys anywhere
FREE = ("eval.bands.", "model.outputs.")   # nodes whose keys are names the user chooses (bands, TNCA outputs)


def _file_of(group: str, name: str, config_dirs: list[Path]) -> str:
    for root in [*config_dirs, CONF_DIR]:
        path = root / group / f"{name}.yaml"
        if path.is_file():
            return str(path)
    return f"{group}/{name}.yaml"


def check_keys(cfg: DictConfig) -> None:
    """Raise AaexpError for a key that an experiment/recipe file adds to the config (inside a Hydra app)."""
    from hydra import compose
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra") and "@" not in k}
    overlays = {g: choices[g] for g in CHECKED_GROUPS if choices.get(g) not in (None, "null")}
    if not overlays:
        return
    base_overrides = [f"{k}={'null' if v is None else v}" for k, v in choices.items()
                      if k not in CHECKED_GROUPS and k != "hparams_search"]
    try:
        base = compose(hc.job.config_name or "config", overrides=base_overrides)
    except Exception:  # the base of an unusual tree cannot be composed: no check rather than a false alarm
        return
    known = set(flatten(OmegaConf.to_container(base, resolve=False)))
    added_on_cli = {o.lstrip("+").split("=", 1)[0] for o in hc.overrides.task if o.startswith("+")}
    have = {k: v for k, v in flatten(OmegaConf.to_container(cfg, resolve=False)).items() if not k.startswith("hydra.")}
    prefixes = {k.rsplit(".", i)[0] for k in known for i in range(1, k.count(".") + 1)}
    unknown = sorted(k for k in have if k not in known and k not in prefixes and not k.startswith(FREE)
                     and not any(k == a or k.startswith(a + ".") for a in added_on_cli))
    if unknown:
        dirs = [Path(s.path.replace("file://", "")) for s in hc.runtime.config_sources if s.provider == "command-line"]
        files = ", ".join(_file_of(g, n, dirs) for g, n in overlays.items())
        raise AaexpError(f"unknown config key {unknown[0]}" + (f" (and {len(unknown) - 1} more: {', '.join(unknown[1:4])})"
                         if len(unknown) > 1 else "") + f", set in {files}: no such key in the defaults; check its spelling")
