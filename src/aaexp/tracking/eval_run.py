"""The run that `aaexp eval` logs into, for every study's evaluator (`aaexp eval` owns the flags it reads)."""

from __future__ import annotations

import contextlib
from typing import Iterator

from aaexp.tracking import store as tracking


@contextlib.contextmanager
def eval_tracker(args, study: str, run_name: str) -> Iterator[tracking.Tracker | None]:
    """The run that `aaexp eval` logs into: `--run-id`, a new one, or none with --no-log."""
    if args.no_log:
        yield None
        return
    with tracking.start_run(f"aaexp-{study}", run_name, args.tracking_uri, {"study": study, "kind": "eval"}, args.run_id) as t:
        yield t
