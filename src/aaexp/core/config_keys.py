"""Unknown config keys, anywhere: one clear error naming the key and the file that set it.

The schema is the packaged config tree itself: a key is known when a packaged group file declares it
(a group's default file, or one of its variants: `model/eq_v1.yaml` has keys `eq_v2` lacks), or
the root config or a study file does. Experiment, recipe and hparams_search files are overlays: they
set keys but declare none. Every key of the composed run must be known, so a misspelling in any YAML
file — an experiment, a group file given with --config-dir, a whole copy of the tree — stops the run
before any work. A study added with --config-dir brings its own schema: the config composed from its
study file alone. Dataclass schemas (Hydra's ConfigStore) were the alternative; they would restate
every default in Python, a second source for each of several hundred values.

Free sub-trees (names the user chooses: eval bands, TNCA outputs) and `+key=value` on the command
line (it says it adds) stay allowed. A misspelt `key=value` on the command line is refused by Hydra;
`aaexp.commands.cli` words that error the same way.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from aaexp.core.config import CONF_DIR, CONFIG_NAME, flatten
from aaexp.core.errors import AaexpError

OVERLAYS = ("experiment", "recipe", "hparams_search")   # set keys anywhere, declare none
FREE = ("eval.bands.", "model.outputs.",   # nodes whose keys are names the user chooses (bands, TNCA outputs)
        "tracking.optuna_trial.")            # null, or the watcher a search sets ({_target_, ...})


def unknown_key_message(keys: list[str], where: str) -> str:
    """The one line every unknown key is reported with (files, or the command line)."""
    more = f" (and {len(keys) - 1} more: {', '.join(keys[1:4])})" if len(keys) > 1 else ""
    return f"unknown config key {keys[0]}{more}, set {where}: no such key in the defaults; check its spelling"


def _package(text: str, default: str) -> str:
    """Where a file's keys land: its `# @package` header, else `default`; '' is the root."""
    m = re.search(r"^#\s*@package\s+(\S+)", text, re.M)
    pkg = m.group(1) if m else default
    return "" if pkg == "_global_" else default if pkg == "_group_" else pkg


def file_keys(path: Path, package: str) -> set[str]:
    """The dotted leaf keys a YAML file sets (its defaults list left out), under its package."""
    text = path.read_text()
    data = OmegaConf.to_container(OmegaConf.create(text), resolve=False) or {}
    data.pop("defaults", None)
    pkg = _package(text, package)
    return {f"{pkg}.{k}" if pkg else k for k in flatten(data)} if data else set()


def _mounts(root: Path) -> dict[str, str]:
    """{group: package} for groups the root config mounts elsewhere (`trainer_profile@trainer`)."""
    entries = OmegaConf.to_container(OmegaConf.load(root)).get("defaults", [])
    pairs = [str(k) for e in entries if isinstance(e, dict) for k in e]
    return dict(p.split("@", 1) for p in pairs if "@" in p)


@lru_cache(maxsize=1)
def packaged_keys() -> frozenset[str]:
    """Every key some packaged config file declares (the schema of the packaged studies)."""
    root = CONF_DIR / f"{CONFIG_NAME}.yaml"
    keys, mounts = file_keys(root, ""), _mounts(root)
    for group in sorted(p for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in (*OVERLAYS, "hydra")):
        for path in group.glob("*.yaml"):
            keys |= file_keys(path, mounts.get(group.name, group.name))
    return frozenset(keys)


def _own_study_keys(study: str | None, config_name: str) -> set[str]:
    """A study that is not packaged declares its keys in its own files: the config composed from it alone."""
    if not study or (CONF_DIR / "study" / f"{study}.yaml").is_file():
        return set()
    from hydra import compose

    base = compose(config_name, overrides=[f"study={study}"])
    return set(flatten(OmegaConf.to_container(base, resolve=False)))


def _config_dirs(hc) -> list[Path]:
    """The folders configs are read from, in Hydra's search order (--config-dir first)."""
    return [Path(s.path) for s in hc.runtime.config_sources if s.schema == "file"]


def _composed_files(hc, dirs: list[Path]) -> list[tuple[Path, str]]:
    """(file, package) for every file the run composed: the root config, each group choice, and the
    files their defaults lists name in the same group (`aa_quick` → `aa_default`)."""
    def find(rel: str) -> Path | None:
        return next((d / rel for d in [*dirs, CONF_DIR] if (d / rel).is_file()), None)

    out: list[tuple[Path, str]] = []
    todo = [(f"{hc.job.config_name or CONFIG_NAME}.yaml", "", "")]
    todo += [(f"{key.split('@')[0]}/{value}.yaml", key.split("@")[0], key.split("@")[-1])
             for key, value in hc.runtime.choices.items() if value is not None and not key.startswith("hydra")]
    while todo:
        rel, group, package = todo.pop()
        path = find(rel)
        if path is None or (path, package) in out:
            continue
        out.append((path, package))
        entries = (OmegaConf.to_container(OmegaConf.load(path)) or {}).get("defaults", [])
        todo += [(f"{group}/{e}.yaml", group, package) for e in entries if isinstance(e, str) and e != "_self_" and group]
    return out


def check_keys(cfg: DictConfig) -> None:
    """Raise AaexpError for a key of the run's config that no defaults declare (inside a Hydra app)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    known = packaged_keys() | _own_study_keys(hc.runtime.choices.get("study"), hc.job.config_name or CONFIG_NAME)
    prefixes = {k.rsplit(".", i)[0] for k in known for i in range(1, k.count(".") + 1)}
    added = {o.lstrip("+").split("=", 1)[0] for o in hc.overrides.task if o.startswith("+")}
    have = [k for k in flatten(OmegaConf.to_container(cfg, resolve=False)) if not k.startswith("hydra.")]
    unknown = sorted(k for k in have if k not in known and k not in prefixes and not k.startswith(FREE)
                     and not any(k == a or k.startswith(a + ".") for a in added))
    if not unknown:
        return
    files = [str(p) for p, pkg in _composed_files(hc, _config_dirs(hc)) if set(unknown) & file_keys(p, pkg)]
    raise AaexpError(unknown_key_message(unknown, f"in {', '.join(files)}" if files else "by a file this run composed"))
