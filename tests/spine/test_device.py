"""`device=auto|cpu|cuda|cuda:N|mps`."""

import pytest
import torch

from aaexp.device import resolve_device
from aaexp.errors import AaexpError


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
