"""`aaexp eval`: one command, flags contributed by each study's `study.eval_cli` module.

An eval module provides DESCRIPTION, `add_arguments(group)`, `claims(args) -> bool` (does this
invocation belong to the study?) and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
from types import ModuleType
from typing import Iterator

from omegaconf import OmegaConf

from aaexp import tracking
from aaexp.config import CONF_DIR


def eval_modules() -> list[tuple[str, ModuleType]]:
    out = []
    for path in sorted((CONF_DIR / "study").glob("*.yaml")):
        mod = OmegaConf.select(OmegaConf.load(path), "study.eval_cli")
        if mod:
            out.append((path.stem, importlib.import_module(mod)))
    return out


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


@contextlib.contextmanager
def eval_tracker(args, study: str, run_name: str) -> Iterator[tracking.Tracker | None]:
    """The run that `aaexp eval` logs into: `--run-id`, a new one, or none with --no-log."""
    if args.no_log:
        yield None
        return
    with tracking.start_run(f"aaexp-{study}", run_name, args.tracking_uri, {"study": study, "kind": "eval"}, args.run_id) as t:
        yield t


def main(argv: list[str]) -> int:
    mods = eval_modules()
    parser = build_parser(mods)
    args = parser.parse_args(argv)
    for _, mod in mods:
        if mod.claims(args):
            return mod.run(args)
    parser.error("nothing to evaluate: give --student (anti-aliasing), --audio (audio measures) or --eq-model (EQ)")
    return 2
