"""GuitarML/Proteus "SimpleRNN" .json files: LSTM -> Linear, plus the input when `skip` is set.

Layout (Automated-GuitarAmpModelling's SimpleRNN.save_model): `model_data` {model: SimpleRNN,
input_size, output_size, unit_type, num_layers, hidden_size, skip, bias_fl} and `state_dict`
with torch's own names under `rec.` (the LSTM) and `lin.` (the output layer), as nested lists.
The recurrent state starts at zero; skip > 0 adds the input to the output.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .errors import ModelFileError

_MODEL_DATA_KEYS = {"model", "input_size", "output_size", "unit_type", "num_layers", "hidden_size", "skip", "bias_fl"}


class SimpleRNNCore(nn.Module):
    """Proteus SimpleRNN: `lin(LSTM(x)) (+ x)`, zero initial state: Tensor[B x T] -> Tensor[B x T]."""

    def __init__(self, hidden_size: int, num_layers: int, skip: bool, bias: bool):
        super().__init__()
        self.rec = nn.LSTM(1, hidden_size, num_layers, batch_first=True)
        self.lin = nn.Linear(hidden_size, 1, bias=bias)
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_chunk(x, None)[0]

    def forward_chunk(self, x: torch.Tensor, state=None):
        """state = (h, c), each Tensor[L x B x H]; None starts from zeros (as Proteus does)."""
        feats, state = self.rec(x[..., None], state)
        y = self.lin(feats)[..., 0]
        return (y + x if self.skip else y), state

    def file_state_dict(self) -> dict[str, torch.Tensor]:
        """Parameters under the file's names (`rec.*`, `lin.*`)."""
        return {k: v for k, v in self.state_dict().items()}


def _check_model_data(md: dict, path: Path) -> None:
    if set(md) != _MODEL_DATA_KEYS:
        extra, missing = sorted(set(md) - _MODEL_DATA_KEYS), sorted(_MODEL_DATA_KEYS - set(md))
        raise ModelFileError(path, "model_data: " + "; ".join(
            ([f"unknown keys {extra}"] if extra else []) + ([f"missing keys {missing}"] if missing else [])))
    if md["model"] != "SimpleRNN":
        raise ModelFileError(path, f"unknown architecture {md['model']!r} in model_data.model (supported: SimpleRNN)")
    if md["unit_type"] != "LSTM":
        raise ModelFileError(path, f"unit_type {md['unit_type']!r} is not supported (only LSTM)")
    if md["input_size"] != 1 or md["output_size"] != 1:
        raise ModelFileError(path, f"input_size {md['input_size']} / output_size {md['output_size']}: "
                             "only mono models without conditioning knobs (1 / 1) are supported")


def build(doc: dict, dtype: torch.dtype, path: Path) -> SimpleRNNCore:
    """Build the SimpleRNN of a Proteus file and load its state_dict in `dtype` (exactly)."""
    md, sd = doc["model_data"], doc.get("state_dict")
    if not isinstance(md, dict) or not isinstance(sd, dict):
        raise ModelFileError(path, "Proteus file needs objects 'model_data' and 'state_dict'")
    _check_model_data(md, path)
    try:
        core = SimpleRNNCore(int(md["hidden_size"]), int(md["num_layers"]), bool(md["skip"]), bool(md["bias_fl"])).to(dtype)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(path, f"invalid model_data: {exc}") from exc
    want = core.file_state_dict()
    if set(sd) != set(want):
        extra, missing = sorted(set(sd) - set(want)), sorted(set(want) - set(sd))
        raise ModelFileError(path, "state_dict does not match model_data: " + "; ".join(
            ([f"unexpected {extra}"] if extra else []) + ([f"missing {missing}"] if missing else [])))
    loaded = {}
    for name, ref in want.items():
        try:
            t = torch.tensor(sd[name], dtype=dtype)
        except (TypeError, ValueError) as exc:
            raise ModelFileError(path, f"state_dict[{name!r}] is not a numeric array: {exc}") from exc
        if t.shape != ref.shape:
            raise ModelFileError(path, f"state_dict[{name!r}] has shape {tuple(t.shape)} ({t.numel()} weights); "
                                 f"model_data needs {tuple(ref.shape)} ({ref.numel()})")
        if not bool(torch.isfinite(t).all()):
            raise ModelFileError(path, f"state_dict[{name!r}] holds {int((~torch.isfinite(t)).sum())} NaN/Inf weights")
        loaded[name] = t
    core.load_state_dict(loaded)
    return core.eval()


def weights_document(core: SimpleRNNCore, doc: dict) -> dict:
    """`doc` with its state_dict replaced by the core's parameters (file key order kept)."""
    params = core.file_state_dict()
    return {**doc, "state_dict": {k: params[k].detach().cpu().tolist() for k in doc["state_dict"]}}

