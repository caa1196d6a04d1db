"""A file that runs code when unpickled: the one attack every reader of torch/pickle files must refuse."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch


class WritesAFile:
    """Unpickling this calls exec, which writes `marker` (what a planted model or checkpoint could do)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


def write_hostile(path: Path, marker: Path, layout: dict | None = None, raw_pickle: bool = False) -> Path:
    """`layout` (the keys the reader expects) with the payload beside them, as torch.save writes it (a zip),
    or as a bare pickle (`raw_pickle`, protocol 2, which torch.load also accepts)."""
    blob = {**(layout or {}), "payload": WritesAFile(marker)}
    if raw_pickle:
        with open(path, "wb") as fh:
            pickle.dump(blob, fh, protocol=2)
    else:
        torch.save(blob, path)
    return path
