"""SIGTERM (and submitit's pre-emption signal) end a run as Terminated in a job process the CLI did not start."""
import os
import signal
import time

import pytest

from aaexp.core.errors import Terminated
from aaexp.core.signals import raise_terminated, signals_end_the_run


def _deliver(sig: signal.Signals) -> None:
    os.kill(os.getpid(), sig)   # a real signal from the OS, handled at the next bytecode
    time.sleep(5)
    pytest.fail(f"{sig.name} did not interrupt")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR2])
def test_a_job_process_ends_on_sigterm_and_submitits_signal_then_its_handlers_come_back(sig, monkeypatch):
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    monkeypatch.delenv("SUBMITIT_PREEMPT_SIGNAL", raising=False)
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR2)}
    with pytest.raises(Terminated, match=sig.name):
        with signals_end_the_run() as own:
            assert own
            _deliver(sig)
    assert {s: signal.getsignal(s) for s in before} == before


def test_under_the_cli_its_own_handler_stays():
    saved = signal.signal(signal.SIGTERM, raise_terminated)   # as `aaexp` installs it
    try:
        with signals_end_the_run() as own:
            assert not own and signal.getsignal(signal.SIGTERM) is raise_terminated
        with pytest.raises(Terminated, match="SIGTERM"):
            _deliver(signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN   # a second SIGTERM must not cut the cleanup short
    finally:
        signal.signal(signal.SIGTERM, saved)
