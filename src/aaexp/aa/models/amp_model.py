"""`AmpModel`: a loaded neural amp model as one causal, batched `Tensor[B x T] -> Tensor[B x T]` module."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

# A chunk's carry-over: the last receptive_field - 1 input samples (WaveNet) or (h, c) (LSTMs).
State = Any


@dataclass
class ModelSource:
    """Everything needed to write a loaded model back in the format and version it came in.

    `document` is the whole file as read, minus its weights (key order kept), so that an
    export changes nothing but the weights and a note in the metadata.
    """

    format: str                      # "nam" | "proteus"
    version: str | None              # .nam "version" ("0.5.4", "0.7.0"); None for Proteus files
    path: str                        # where it was read from
    sha256: str                      # of the file's bytes: a cache key for anything derived from it
    document: dict = field(repr=False)
    sample_rate_in_file: bool = True

    @property
    def metadata(self) -> dict:
        """The file's metadata (NAM: date, loudness, gain, user fields; Proteus: usually none)."""
        return self.document.get("metadata") or {}

    @property
    def config(self) -> dict:
        """The architecture config exactly as the file holds it (`config` or `model_data`)."""
        return self.document["config"] if self.format == "nam" else self.document["model_data"]


class AmpModel(nn.Module):
    """A neural amp model: causal, same-length, batched; runs in any float dtype on any device.

    Built by `aaexp.aa.models.load_model`; `export_model` writes it back in its source format.

    Attributes:
        core: the network (NAM's own WaveNet for .nam WaveNets, torch.nn.LSTM-based for LSTMs).
        sample_rate: Hz, from the file (or the caller's default, else 44.1 kHz with a warning).
        receptive_field: samples. WaveNet: exact, 1 + sum((kernel - 1) * dilation). LSTMs have
            unbounded memory; this is a suggested warm-up (`lstm_warmup_s` at load time).
        architecture: "WaveNet" | "LSTM".
        source: `ModelSource`, what `export_model` needs.

    Shape:
        forward: Tensor[B x T] (or Tensor[T]) -> same shape, in the parameters' dtype.
    """

    def __init__(self, core: nn.Module, architecture: str, sample_rate: float, receptive_field: int, source: ModelSource):
        super().__init__()
        self.core = core
        self.architecture = architecture
        self.sample_rate = float(sample_rate)
        self.receptive_field = int(receptive_field)
        self.source = source

    @property
    def dtype(self) -> torch.dtype:
        """dtype of the parameters; inputs must match it (no silent precision change)."""
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def file_suffix(self) -> str:
        """".nam" or ".json": what `export_model` writes for this model's source format."""
        return ".nam" if self.source.format == "nam" else ".json"

    def _check_input(self, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        if x.ndim not in (1, 2):
            raise ValueError(f"AmpModel expects Tensor[B x T] or Tensor[T], got shape {tuple(x.shape)}")
        if x.dtype != self.dtype:
            raise TypeError(f"input is {x.dtype} but the model is {self.dtype}: call model.to({x.dtype}) or cast the input")
        return (x[None], True) if x.ndim == 1 else (x, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run from silence (zero history / initial state): Tensor[B x T] -> Tensor[B x T]."""
        x, squeeze = self._check_input(x)
        y = self.core(x)
        return y[0] if squeeze else y

    def forward_chunk(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Run one chunk continuing from `state` (None: from silence); returns (y, state).

        Chunk outputs concatenated equal one `forward` over the whole signal, so long signals
        and truncated backpropagation through time work for every architecture. Detach the
        state between chunks to truncate gradients.

        Shape: Tensor[B x T] -> (Tensor[B x T], state)
        """
        x, _ = self._check_input(x)
        return self.core.forward_chunk(x, state)

    def __repr__(self) -> str:
        # one line: the layer tree (print(model.core)) is rarely what a researcher wants to see
        n = sum(p.numel() for p in self.parameters())
        fmt = f"{self.source.format} {self.source.version}" if self.source.version else self.source.format
        return (f"AmpModel({self.architecture}, {self.sample_rate:g} Hz, receptive_field={self.receptive_field}, "
                f"{n:,} parameters, {self.dtype}, {fmt}, {self.source.path})")
