"""Where the Hydra config tree lives and small helpers to read it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, ListConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"   # src/aaexp/conf, beside core/
CONFIG_NAME = "config"

# `${aaexp_pid:}` in hydra.run.dir: two runs started in the same second still get folders of their own.
OmegaConf.register_new_resolver("aaexp_pid", lambda: str(os.getpid()), replace=True)


def available(group: str, extra_dirs: Iterable[str | Path] = ()) -> list[str]:
    """Names of the configs in a group (e.g. `experiment`), from the package and any --config-dir."""
    names = set()
    for root in [CONF_DIR, *map(Path, extra_dirs)]:
        d = root / group
        if d.is_dir():
            names.update(p.relative_to(d).with_suffix("").as_posix() for p in d.rglob("*.yaml"))
    return sorted(names)


def compose(overrides: list[str] | None = None, config_dir: str | Path | None = None) -> DictConfig:
    """Compose the config outside a Hydra app (tests, eval): same tree, same overrides syntax."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(config_dir or CONF_DIR), version_base="1.3"):
        return hydra_compose(CONFIG_NAME, overrides=list(overrides or []), return_hydra_config=False)


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists become their string form (MLflow params are strings)."""
    if isinstance(cfg, (DictConfig, ListConfig)):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    out: dict[str, Any] = {}
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                out.update(flatten(v, key))
            else:
                out[key] = v
    else:
        out[prefix] = cfg
    return out
