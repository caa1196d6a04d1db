"""SIGTERM ends the work in hand as `Terminated`, in the `aaexp` command and in a launcher's job process alike."""

from __future__ import annotations

import contextlib
import os
import signal
import threading

from aaexp.core.errors import Terminated


def raise_terminated(signum, frame) -> None:
    """The handler: SIGTERM (or a launcher's pre-emption signal) raises Terminated where the code stands."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM (SLURM's after its USR2) must not cut the cleanup short
    raise Terminated(signal.Signals(signum).name)


@contextlib.contextmanager
def signals_end_the_run():
    """SIGTERM ends the run as KILLED in any process, not only one the aaexp CLI started.

    A launcher's job process runs `run()` without the CLI: submitit's job entry point replaces
    SIGTERM with a handler that only logs "Bypassing signal SIGTERM", so SLURM's SIGTERM at a time
    limit, `scancel` or pre-emption left the run RUNNING in MLflow until SIGKILL came. Here SIGTERM
    (and, under submitit, its pre-emption/time-limit signal, USR2 unless SUBMITIT_PREEMPT_SIGNAL says
    otherwise, which would have requeued the job as a fresh run) raise Terminated, as the CLI does.
    Yields whether it installed the handlers (False under the CLI, or off the main thread).
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is raise_terminated:
        yield False
        return
    sigs = [signal.SIGTERM]
    if os.environ.get("SUBMITIT_EXECUTOR"):
        preempt = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2").upper().removeprefix("SIG"), None)
        if preempt is not None and preempt not in sigs:
            sigs.append(preempt)
    saved = {s: signal.signal(s, raise_terminated) for s in sigs}
    try:
        yield True
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
