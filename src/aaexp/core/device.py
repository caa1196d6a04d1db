"""Device selection: `device=auto|cpu|cuda|cuda:N|mps`, and the CPU thread count of a run."""

import contextlib

import torch

from aaexp.core.errors import AaexpError


def resolve_device(spec: str = "auto") -> torch.device:
    """Turn the config's `device` into a torch.device; `auto` picks CUDA when available, else CPU.

    MPS is used only when asked for: the anti-aliasing study computes in float64, which MPS lacks.
    """
    spec = str(spec).strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise AaexpError(f"device={spec} was asked for but CUDA is not available (use device=auto or cpu)")
        dev = torch.device(spec)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise AaexpError(f"device={spec}: only {torch.cuda.device_count()} CUDA device(s) present")
        return dev
    if spec == "mps":
        if not torch.backends.mps.is_available():
            raise AaexpError("device=mps was asked for but MPS is not available")
        return torch.device("mps")
    if spec == "cpu":
        return torch.device("cpu")
    raise AaexpError(f"device={spec!r} is not one of auto, cpu, cuda, cuda:N, mps")


@contextlib.contextmanager
def cpu_threads(threads, device: torch.device):
    """torch's intra-op thread count set to `threads` for the block when running on the CPU, then
    restored (a study's `trainer.cpu_threads`; None leaves torch's default)."""
    before = torch.get_num_threads()
    if threads is not None and device.type == "cpu":
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)
