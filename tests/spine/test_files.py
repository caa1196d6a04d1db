"""aaexp.core.files: what aaexp reads back opens weights-only; a file that would run code is refused in one line."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from aaexp.core.errors import AaexpError
from aaexp.core.files import load_safely, trust
from tests.hostile import write_hostile
from tests.spine.helpers import REPO


@pytest.mark.parametrize("raw", [False, True], ids=["torch_save", "raw_pickle"])
def test_the_hostile_file_really_runs_code_when_fully_unpickled(tmp_path, raw):
    """The control: plain torch.load(weights_only=False), what aaexp did before, writes the marker (a bare
    pickle then fails torch's format check, after the code has run)."""
    path, marker = write_hostile(tmp_path / "x.pt", tmp_path / "marker", raw_pickle=raw), tmp_path / "marker"
    code = f"import torch, sys; sys.path.insert(0, {str(REPO)!r}); torch.load({str(path)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert marker.read_text() == "code ran"


@pytest.mark.parametrize("raw", [False, True], ids=["torch_save", "raw_pickle"])
def test_load_safely_refuses_a_hostile_file_in_one_line_and_runs_nothing(tmp_path, raw):
    path = write_hostile(tmp_path / "x.pt", tmp_path / "marker", {"model": {}}, raw_pickle=raw)
    with pytest.raises(AaexpError) as err:
        load_safely(path, "a test file", "; do this")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}: refused to open a test file") and msg.endswith("; do this"), msg
    if not raw:
        assert "would call exec" in msg, msg   # the global the pickle names
    assert not (tmp_path / "marker").exists()


def test_load_safely_names_a_damaged_or_foreign_file(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a torch file at all")
    with pytest.raises(AaexpError, match=r"junk.pt: refused to open a test file: not a weights-only file \(pickle opcode"):
        load_safely(tmp_path / "junk.pt", "a test file")
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(AaexpError, match=r"cut.pt: not a test file \(damaged or another format"):
        load_safely(tmp_path / "cut.pt", "a test file")
    with pytest.raises(AaexpError, match=r"missing.pt: cannot read a test file"):
        load_safely(tmp_path / "missing.pt", "a test file")


def test_numpy_arrays_and_scalars_of_older_files_still_open(tmp_path):
    """Checkpoints of the previous aaexp hold numpy's RNG state (an ndarray) and numpy scalars."""
    state = np.random.get_state()
    torch.save({"numpy": state, "best": np.float64(0.25), "n": np.int64(3)}, tmp_path / "old.pt")
    blob = load_safely(tmp_path / "old.pt", "a test file")
    assert blob["numpy"][0] == "MT19937" and np.array_equal(blob["numpy"][1], state[1]) and blob["numpy"][2:] == state[2:]
    assert blob["best"] == 0.25 and blob["n"] == 3


@dataclass
class _Counters:
    epoch: int
    history: list


def test_trust_rewrites_a_trusted_file_weights_only_and_keeps_the_original(tmp_path):
    """A file `load_safely` refuses (a class pickled by reference) converts once, by the user's decision."""
    path = tmp_path / "mine.pt"
    torch.save({"state": _Counters(4, [{"epoch": 4, "loss": np.float64(0.5)}]), "w": torch.arange(3.0)}, path)
    with pytest.raises(AaexpError, match="refused"):
        load_safely(path, "a test file")
    trust(path)
    blob = torch.load(path, weights_only=True)   # torch's own weights-only loader, no allowlist
    assert blob["state"] == {"epoch": 4, "history": [{"epoch": 4, "loss": 0.5}]} and torch.equal(blob["w"], torch.arange(3.0))
    assert (tmp_path / "mine.pt.orig").is_file()
