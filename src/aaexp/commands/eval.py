"""`aaexp eval`: one command, flags contributed by each study's `study.eval_cli` module.

An eval module provides DESCRIPTION, `add_arguments(group)`, `claims(args) -> bool` (does this
invocation belong to the study?) and `run(args) -> int`; it logs through tracking.eval_run.eval_tracker.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from types import ModuleType

from omegaconf import OmegaConf

from aaexp.core.config import CONF_DIR
from aaexp.core.errors import AaexpError


def eval_modules(config_dirs: list[str] | tuple[str, ...] = ()) -> list[tuple[str, ModuleType]]:
    """(study, eval module) for every study config naming a `study.eval_cli`, packaged or under `config_dirs`.

    A study added with `--config-dir` overrides a packaged one of the same name, as in `aaexp train`.
    """
    found: dict[str, str] = {}
    for folder in (CONF_DIR, *map(Path, config_dirs)):
        if not (Path(folder) / "study").is_dir() and folder is not CONF_DIR:
            raise AaexpError(f"--config-dir {folder}: no study/ folder in it")
        for path in sorted((Path(folder) / "study").glob("*.yaml")):
            mod = OmegaConf.select(OmegaConf.load(path), "study.eval_cli")
            if mod:
                found[path.stem] = str(mod)
    out = []
    for name, mod in sorted(found.items()):
        try:
            out.append((name, importlib.import_module(mod)))
        except ImportError as exc:
            raise AaexpError(f"study {name}: study.eval_cli={mod!r} cannot be imported ({exc})") from exc
    return out


def _config_dirs(argv: list[str]) -> tuple[list[str], list[str]]:
    """Take `--config-dir DIR` / `--config-dir=DIR` (repeatable) out of argv: (dirs, the rest)."""
    dirs, rest, it = [], [], iter(argv)
    for a in it:
        if a == "--config-dir":
            d = next(it, None)
            if d is None:
                raise AaexpError("--config-dir needs a folder")
            dirs.append(d)
        elif a.startswith("--config-dir="):
            dirs.append(a.split("=", 1)[1])
        else:
            rest.append(a)
    return dirs, rest


def build_parser(mods) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aaexp eval", description="Measure models or audio; results are printed and logged to MLflow.")
    g = p.add_argument_group("logging")
    g.add_argument("--run-id", help="log into this existing MLflow run (e.g. the training run) instead of a new one")
    g.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    g.add_argument("--no-log", action="store_true", help="print only; log nothing to MLflow")
    g.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    g.add_argument("--out", metavar="DIR", default="eval_out", help="folder for tables and plots (default: eval_out)")
    for name, mod in mods:
        mod.add_arguments(p.add_argument_group(f"{name}: {mod.DESCRIPTION}"))
    return p


def main(argv: list[str]) -> int:
    dirs, argv = _config_dirs(list(argv))
    mods = eval_modules(dirs)
    parser = build_parser(mods)
    parser.add_argument("--config-dir", metavar="DIR", action="append",
                        help="a config folder of your own (as for aaexp train): its studies' evaluators join in")
    args = parser.parse_args(argv)
    for _, mod in mods:
        if mod.claims(args):
            return mod.run(args)
    parser.error("nothing to evaluate: give --student (anti-aliasing), --audio (audio measures) or --eq-model (EQ)")
    return 2
