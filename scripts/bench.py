"""Run every benchmark (scripts/bench_*.py) and write each one's JSON to bench/results/.

Each bench module exposes run() -> dict of timings and ratios measured in the same run; ratios,
not absolute seconds, are what the targets are stated in. `--only aa_core` picks one.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "bench" / "results"


def machine() -> dict:
    import os

    import torch

    return {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}


def record(name: str, result: dict, started: float) -> Path:
    """Write one bench's result to bench/results/<name>.json with when, how long and on what."""
    out = {"bench": name, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "wall_s": round(time.perf_counter() - started, 2), "machine": machine(), "results": result}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    return path


def run_alone(name: str, run, show=None) -> dict:
    """A bench script's `__main__`: run it, show the result (`show`, or the JSON), record it."""
    started = time.perf_counter()
    result = run()
    if show is None:
        print(json.dumps(result, indent=2, default=str))
    else:
        show(result)
    print("wrote", record(name, result, started))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--only", action="append", help="bench name(s), e.g. aa_core")
    args = p.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    failed = []
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem[len("bench_"):]
        if args.only and name not in args.only:
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            result = mod.run()
        except Exception as exc:  # one broken bench must not hide the others' numbers
            print(f"   FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed.append(name)
            continue
        record(name, result, t0)
        print(json.dumps(result, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
