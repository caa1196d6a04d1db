"""NAM LSTM .nam files: a torch LSTM with a learned initial state and a linear head.

The .nam weight list (neural-amp-modeler's LSTM export, read by the NAM plugins) is, per layer,
the row-major [W_ih | W_hh] matrix (4H x (I + H), gates i, f, g, o), one bias vector (4H), the
initial hidden state (H) and the initial cell state (H); then the head's weight (H) and bias (1).
The file holds one bias per layer where torch has two: it goes to bias_ih and bias_hh stays a
frozen zero, so what is written back is exactly what was read (nam's own loader does the same but
rounds to float32, and its exporter re-derives the initial state, so it is not used here).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .errors import ModelFileError

_CONFIG_KEYS = {"input_size", "hidden_size", "num_layers"}


class NamLSTMCore(nn.Module):
    """LSTM -> Linear(H, 1), starting from a learned (h0, c0): Tensor[B x T] -> Tensor[B x T]."""

    def __init__(self, hidden_size: int, num_layers: int):
        super().__init__()
        self.lstm = nn.LSTM(1, hidden_size, num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)
        self.h0 = nn.Parameter(torch.zeros(num_layers, hidden_size))
        self.c0 = nn.Parameter(torch.zeros(num_layers, hidden_size))
        for layer in range(num_layers):
            getattr(self.lstm, f"bias_hh_l{layer}").requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_chunk(x, None)[0]

    def forward_chunk(self, x: torch.Tensor, state=None):
        """state = (h, c), each Tensor[L x B x H]; None starts from the learned initial state."""
        if state is None:
            b = x.shape[0]
            state = (self.h0[:, None].expand(-1, b, -1).contiguous(), self.c0[:, None].expand(-1, b, -1).contiguous())
        feats, state = self.lstm(x[..., None], state)
        return self.head(feats)[..., 0], state

    def _blocks(self) -> list[tuple[str, torch.Tensor]]:
        """(name, tensor) in file order; the [W_ih | W_hh] block is built from both matrices."""
        out = []
        for layer in range(self.lstm.num_layers):
            w_ih, w_hh = getattr(self.lstm, f"weight_ih_l{layer}"), getattr(self.lstm, f"weight_hh_l{layer}")
            out.append((f"W_l{layer}", torch.cat([w_ih, w_hh], dim=1)))
            b_ih, b_hh = getattr(self.lstm, f"bias_ih_l{layer}"), getattr(self.lstm, f"bias_hh_l{layer}")
            out.append((f"b_l{layer}", b_ih + b_hh if bool(b_hh.any()) else b_ih))  # keeps -0.0 exact
            out.append((f"h0_l{layer}", self.h0[layer]))
            out.append((f"c0_l{layer}", self.c0[layer]))
        out += [("head.weight", self.head.weight), ("head.bias", self.head.bias)]
        return out

    def n_weights(self) -> int:
        return sum(t.numel() for _, t in self._blocks())

    @torch.no_grad()
    def import_weights(self, w: torch.Tensor) -> None:
        i = 0

        def take(n: int) -> torch.Tensor:
            nonlocal i
            i += n
            return w[i - n:i]

        for layer in range(self.lstm.num_layers):
            w_ih, w_hh = getattr(self.lstm, f"weight_ih_l{layer}"), getattr(self.lstm, f"weight_hh_l{layer}")
            both = take(w_ih.numel() + w_hh.numel()).reshape(w_ih.shape[0], -1)
            w_ih.copy_(both[:, : w_ih.shape[1]])
            w_hh.copy_(both[:, w_ih.shape[1]:])
            getattr(self.lstm, f"bias_ih_l{layer}").copy_(take(w_ih.shape[0]))
            getattr(self.lstm, f"bias_hh_l{layer}").zero_()
            self.h0[layer] = take(self.lstm.hidden_size)
            self.c0[layer] = take(self.lstm.hidden_size)
        self.head.weight.copy_(take(self.head.weight.numel()).reshape(self.head.weight.shape))
        self.head.bias.copy_(take(1))

    @torch.no_grad()
    def export_weights(self) -> list[float]:
        return torch.cat([t.detach().reshape(-1) for _, t in self._blocks()]).cpu().tolist()


def build(config: dict, weights: list, dtype: torch.dtype, path: Path) -> NamLSTMCore:
    """Build the LSTM of a .nam file's config and load its weights in `dtype` (exactly)."""
    if set(config) != _CONFIG_KEYS:
        raise ModelFileError(path, f"LSTM config: expected keys {sorted(_CONFIG_KEYS)}, got {sorted(config)}")
    if config["input_size"] != 1:
        raise ModelFileError(path, f"LSTM input_size {config['input_size']}: only mono models (1) are supported")
    try:
        core = NamLSTMCore(int(config["hidden_size"]), int(config["num_layers"])).to(dtype)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(path, f"invalid LSTM config: {exc}") from exc
    if len(weights) != core.n_weights():
        raise ModelFileError(path, f"weight count {len(weights)} does not match the config, which needs {core.n_weights()}")
    core.import_weights(torch.tensor(weights, dtype=dtype))
    return core.eval()
