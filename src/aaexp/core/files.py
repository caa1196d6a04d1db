"""Atomic file writes (a run killed mid-write keeps the previous good file, never half a new one), and
the one way aaexp reads back what torch.save wrote: weights-only, so no file can run code when opened.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from aaexp.core.errors import AaexpError


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call `write(tmp_path)` on a temp file beside `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def atomic_save(obj: Any, path: str | Path) -> Path:
    """torch.save, atomically."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def plain(obj: Any) -> Any:
    """`obj` in the types weights_only loading accepts: numpy arrays as tensors, numpy scalars as Python
    numbers, dataclasses as dicts; containers converted item by item (tuples stay tuples)."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, np.generic):
        return obj.item()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return plain(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(v) for v in obj)
    return obj


def _numpy_plain_types() -> list:
    """numpy's array and scalar rebuilders and its numeric dtypes: what files written before this loader
    hold (numpy's RNG state, numpy scalars). They build arrays of numbers only; an object array's items go
    through the same weights-only unpickler, so nothing here can call code."""
    core = getattr(np, "_core", None) or np.core   # numpy 2 moved numpy.core to numpy._core
    out = [np.ndarray, np.dtype, core.multiarray._reconstruct, core.multiarray.scalar]
    out += [(f, f"numpy.core.multiarray.{f.__name__}") for f in out[2:]]   # the names numpy 1 wrote
    names = {"BoolDType", *(f"{k}{b}DType" for k in ("Int", "UInt", "Float") for b in (8, 16, 32, 64))}
    return out + [getattr(np.dtypes, n) for n in sorted(names) if hasattr(getattr(np, "dtypes", None), n)]


def _why_refused(exc: Exception) -> str:
    """What torch's weights-only unpickler stopped at, in a few words."""
    text = str(exc)
    m = re.search(r"GLOBAL (\S+) was not an allowed global", text) or re.search(r"but got (<[^>]+>)", text)
    if m:
        return f"loading it would call {m.group(1)}, i.e. could run code"
    m = re.search(r"Unsupported operand (\d+)", text)
    return (f"not a weights-only file (pickle opcode {m.group(1)}: damaged, another format, or a pickle that could "
            f"run code)" if m else "not a weights-only file")


def load_safely(path: str | Path, what: str, unsafe_hint: str = "") -> Any:
    """torch.load(weights_only=True) of `path`: tensors, numbers, strings, lists, tuples, dicts (and numpy's
    plain arrays of older files). A file that needs anything else to load, i.e. could run code, is refused
    with one line naming it; `what` says what the file should have been, `unsafe_hint` how to go on."""
    try:
        with torch.serialization.safe_globals(_numpy_plain_types()), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)   # torch's note on foreign pickle protocols
            return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise AaexpError(f"{path}: cannot read {what} ({exc.strerror or exc})") from exc
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc):
            raise AaexpError(f"{path}: refused to open {what}: {_why_refused(exc)}; aaexp opens only weights-only "
                             f"files{unsafe_hint}") from None
        raise AaexpError(f"{path}: not {what} (damaged or another format: {exc})") from None
    except Exception as exc:  # torch raises KeyError, RuntimeError, EOFError... on files that are no torch file
        raise AaexpError(f"{path}: not {what} (damaged or another format: {type(exc).__name__} {exc})") from None


def trust(path: str | Path) -> Path:
    """Rewrite a file the user trusts but `load_safely` refuses (written by hand, or by an older tool) in
    the weights-only types; the original is kept beside it as FILE.orig. This one call unpickles fully."""
    path = Path(path)
    blob = torch.load(path, map_location="cpu", weights_only=False)
    shutil.copy2(path, path.with_name(path.name + ".orig"))
    atomic_save(plain(blob), path)
    load_safely(path, "the converted file")   # proves it now opens weights-only
    return path


if __name__ == "__main__":   # python -m aaexp.core.files --trust FILE...
    if sys.argv[1:2] != ["--trust"] or len(sys.argv) < 3:
        sys.exit("usage: python -m aaexp.core.files --trust FILE...  (only for files whose author you trust: it unpickles them)")
    for name in sys.argv[2:]:
        try:
            print(f"{trust(name)}: now weights-only (original kept as {name}.orig)")
        except AaexpError as exc:
            sys.exit(f"error: {exc}")
