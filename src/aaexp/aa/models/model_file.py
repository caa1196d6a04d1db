"""`load_model` / `export_model`: one mirrored pair for every supported model file.

Formats: NAM .nam (WaveNet in format 0.5.x and 0.6+/0.7, LSTM) and GuitarML/Proteus SimpleRNN
.json. Weights are read into the requested dtype exactly (float64 by default, as JSON holds them)
and written back from the parameters with nothing but the weights and a note in the metadata
changed, so load -> export -> load gives bit-identical outputs.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import math
import warnings
from pathlib import Path

import torch

from aaexp.core.files import atomic_write_text

from . import lstm_io, proteus_io, wavenet_io
from .amp_model import AmpModel, ModelSource
from .errors import ModelFileError

DEFAULT_SAMPLE_RATE = 44100.0   # for files that carry none and callers that give none
LSTM_WARMUP_S = 0.5             # suggested LSTM warm-up (their memory is unbounded); callers may override
_NAM_KEYS = {"version", "metadata", "architecture", "config", "weights", "sample_rate"}
_PROTEUS_KEYS = {"model_data", "state_dict", "metadata", "sample_rate"}
_NOTE_KEY = "aaexp"             # metadata key holding the list of notes that exports add


class SampleRateWarning(UserWarning):
    """The file carries no sample rate (or one that disagrees with the caller's)."""


def _read_document(path: Path) -> tuple[dict, bytes]:
    if not path.exists():
        raise ModelFileError(path, "no such file")
    if not path.is_file():
        raise ModelFileError(path, "not a regular file")
    raw = path.read_bytes()
    try:
        doc = json.loads(raw)
    except UnicodeDecodeError:
        raise ModelFileError(path, "not JSON (binary content)") from None
    except json.JSONDecodeError as exc:
        raise ModelFileError(path, f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(doc, dict):
        raise ModelFileError(path, f"not a model file (JSON top level is a {type(doc).__name__}, not an object)")
    return doc, raw


def _format_of(doc: dict, path: Path) -> str:
    if "model_data" in doc:
        return "proteus"
    if "architecture" in doc:
        return "nam"
    raise ModelFileError(path, "not a NAM .nam or Proteus .json model (no 'architecture' or 'model_data' key)")


def _check_top_keys(doc: dict, known: set[str], path: Path) -> None:
    unknown = sorted(set(doc) - known)
    if unknown:
        warnings.warn(f"{path}: ignoring unknown top-level keys {unknown} (kept on export)", stacklevel=4)


def _resolve_sample_rate(value, path: Path, default: float | None) -> tuple[float, bool]:
    """(rate, whether the file carries it): the file's, else the caller's default, else 44.1 kHz."""
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ModelFileError(path, f"sample_rate {value!r} is not a positive number")
        if default is not None and float(default) != float(value):
            warnings.warn(f"{path}: the file says {value:g} Hz, not {float(default):g} Hz as configured; using the file's",
                          SampleRateWarning, stacklevel=4)
        return float(value), True
    if default is not None:
        return float(default), False
    warnings.warn(f"{path}: no sample rate in the file; assuming {DEFAULT_SAMPLE_RATE:g} Hz "
                  "(set model.sample_rate to override)", SampleRateWarning, stacklevel=4)
    return DEFAULT_SAMPLE_RATE, False


def _nam_weights(doc: dict, path: Path) -> list[float]:
    w = doc.get("weights")
    if not isinstance(w, list) or not w:
        raise ModelFileError(path, "'weights' is missing or not a non-empty list")
    bad = [i for i, v in enumerate(w) if isinstance(v, bool) or not isinstance(v, (int, float))]
    if bad:
        raise ModelFileError(path, f"weights[{bad[0]}] is {w[bad[0]]!r}, not a number")
    nonfinite = [i for i, v in enumerate(w) if not math.isfinite(v)]
    if nonfinite:
        raise ModelFileError(path, f"{len(nonfinite)} NaN/Inf weights (first at index {nonfinite[0]})")
    return [float(v) for v in w]


def load_model(path: str | Path, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None,
               default_sample_rate: float | None = None, lstm_warmup_s: float = LSTM_WARMUP_S) -> AmpModel:
    """Load a NAM .nam (WaveNet 0.5.x/0.6+, LSTM) or Proteus SimpleRNN .json file.

    Args:
        path: the model file.
        dtype: parameter dtype (float64 default: JSON weights are read exactly).
        device: where the parameters go (default CPU).
        default_sample_rate: used when the file carries none (e.g. `model.sample_rate` in the config).
        lstm_warmup_s: LSTMs' suggested warm-up, reported as `receptive_field` = round(s * fs).

    Raises:
        ModelFileError: missing file, not JSON, unknown architecture, weights that do not fit the
            config, NaN/Inf weights; the message is one line naming the file and the problem.
    """
    path = Path(path)
    doc, raw = _read_document(path)
    fmt = _format_of(doc, path)
    if fmt == "nam":
        _check_top_keys(doc, _NAM_KEYS, path)
        missing = [k for k in ("version", "config", "weights") if k not in doc]
        if missing:
            raise ModelFileError(path, f"NAM file without {missing}")
        if not isinstance(doc["config"], dict):
            raise ModelFileError(path, "'config' is not an object")
        arch = doc["architecture"]
        weights = _nam_weights(doc, path)
        fs, in_file = _resolve_sample_rate(doc.get("sample_rate"), path, default_sample_rate)
        if arch == "WaveNet":
            core = wavenet_io.build(doc["config"], weights, fs, dtype, path)
            receptive_field = core.receptive_field
        elif arch == "LSTM":
            core = lstm_io.build(doc["config"], weights, dtype, path)
            receptive_field = round(lstm_warmup_s * fs)
        else:
            raise ModelFileError(path, f"unknown architecture {arch!r} (supported: WaveNet, LSTM)")
        version = str(doc["version"])
    else:
        _check_top_keys(doc, _PROTEUS_KEYS, path)
        core = proteus_io.build(doc, dtype, path)
        fs, in_file = _resolve_sample_rate(doc.get("sample_rate"), path, default_sample_rate)
        arch, version, receptive_field = "LSTM", None, round(lstm_warmup_s * fs)
    body = {k: v for k, v in doc.items() if k not in ("weights", "state_dict")}
    if fmt == "proteus":  # keep the state_dict's key order for writing back, not its numbers
        body["state_dict"] = {k: None for k in doc["state_dict"]}
    source = ModelSource(fmt, version, str(path), hashlib.sha256(raw).hexdigest(), body, in_file)
    return AmpModel(core, arch, fs, receptive_field, source).to(device=device)


def _with_note(metadata: dict | None, model: AmpModel, note: str) -> dict:
    metadata = dict(metadata or {})
    notes = metadata.get(_NOTE_KEY, [])
    notes = notes if isinstance(notes, list) else [notes]
    entry = {"note": note, "date": _dt.datetime.now().isoformat(timespec="seconds"),
             "derived_from": Path(model.source.path).name, "derived_from_sha256": model.source.sha256}
    metadata[_NOTE_KEY] = [*notes, entry]
    return metadata


def _number(x: float) -> int | float:
    """44100.0 -> 44100, as the files write rates."""
    return int(x) if float(x).is_integer() else float(x)


def _write_json(path: Path, doc: dict, indent: int | None) -> None:
    """Atomically, so a failure never leaves half a model."""
    atomic_write_text(path, json.dumps(doc, indent=indent, allow_nan=False))


def export_model(model: AmpModel, path: str | Path, note: str = "") -> Path:
    """Write `model` in the format and version it was loaded from; returns the path written.

    The source's config and metadata are kept; `metadata.aaexp` gains an entry with `note`, the
    date and the source file's name and sha256. The suffix is corrected to the format's own
    (.nam / .json) if it differs. Non-finite weights are refused (ModelFileError).
    """
    path = Path(path)
    if path.suffix != model.file_suffix:
        path = path.with_suffix(model.file_suffix)
    src = model.source
    doc = copy.deepcopy(src.document)
    if src.format == "nam":
        weights = model.core.export_weights()
        if not all(math.isfinite(v) for v in weights):
            raise ModelFileError(path, "refusing to write a model with NaN/Inf weights")
        doc["weights"] = weights
        if src.sample_rate_in_file:
            doc["sample_rate"] = _number(model.sample_rate)
        doc["metadata"] = _with_note(doc.get("metadata"), model, note)
        indent = None  # as neural-amp-modeler writes them
    else:
        doc = proteus_io.weights_document(model.core, doc)
        if not all(bool(torch.isfinite(p).all()) for p in model.core.parameters()):
            raise ModelFileError(path, "refusing to write a model with NaN/Inf weights")
        if src.sample_rate_in_file:
            doc["sample_rate"] = _number(model.sample_rate)
        doc["metadata"] = _with_note(doc.get("metadata"), model, note)
        indent = 2  # as GuitarML writes them
    _write_json(path, doc, indent)
    return path
