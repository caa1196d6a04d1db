"""`device=auto|cpu|cuda|cuda:N|mps`."""

import pytest
import torch

from aaexp.core.device import cpu_threads, resolve_device
from aaexp.core.errors import AaexpError


def test_auto_is_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


def test_auto_prefers_cuda_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_explicit_cuda_without_cuda_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(AaexpError, match="CUDA is not available"):
        resolve_device("cuda:0")


def test_cuda_index_out_of_range(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(AaexpError, match="only 1 CUDA"):
        resolve_device("cuda:3")


@pytest.mark.parametrize("bad", ["gpu", "tpu", "cuda:x"])
def test_unknown_device_names_the_choices(bad):
    with pytest.raises((AaexpError, RuntimeError)):
        resolve_device(bad)


def test_cpu_threads_sets_and_restores_on_cpu_only():
    before = torch.get_num_threads()
    want = 1 if before != 1 else 2
    with cpu_threads(want, torch.device("cpu")):
        assert torch.get_num_threads() == want
    assert torch.get_num_threads() == before
    with cpu_threads(want, torch.device("cuda")):         # not on the CPU: left alone
        assert torch.get_num_threads() == before
    with cpu_threads(None, torch.device("cpu")):          # None: torch's default stays
        assert torch.get_num_threads() == before
    try:
        with cpu_threads(want, torch.device("cpu")):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert torch.get_num_threads() == before              # restored after an error too
