"""The neural cellular automaton that grows a spectrogram from one seed cell.

Rows of the grid are frequency bins, columns are STFT frames. Every cell runs the same small MLP
on what it perceives (perception.py) and adds the result to its state; an alive channel decides
which cells exist. Readout maps chosen channels through tanh onto the contract's compressed range
(the notebook's tanh·40 − 40 dB is the range [-80, 0]).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from aaexp.core.errors import AaexpError
from aaexp.tnca.perception import Perception, pad_grid

ALIVE_MODES = ("soft", "threshold")


@dataclass(frozen=True)
class OutputSpec:
    """One spectrogram the grid emits: which channel, how many bins, how much it counts in the loss."""

    name: str
    kind: str  # "mel" | "linear"
    n_bins: int
    channel: int
    weight: float = 1.0
    gram: bool = True  # include the Gram-matrix term for this output
    range: tuple[float, float] | None = None  # tanh mapped onto [lo, hi]; None: the contract's


def output_specs(outputs_cfg: Mapping[str, Mapping[str, Any]]) -> list[OutputSpec]:
    """Parse `model.outputs` strictly (unknown keys are an error)."""
    allowed = {"kind", "n_bins", "channel", "weight", "gram", "range"}
    specs = []
    for name, o in outputs_cfg.items():
        extra = set(o) - allowed
        if extra:
            raise AaexpError(f"model.outputs.{name}: unknown keys {sorted(extra)}")
        if o["kind"] not in ("mel", "linear"):
            raise AaexpError(f"model.outputs.{name}.kind={o['kind']!r} is not mel or linear")
        rng = o.get("range")
        specs.append(OutputSpec(name, o["kind"], int(o["n_bins"]), int(o["channel"]), float(o.get("weight", 1.0)),
                                bool(o.get("gram", True)), None if rng is None else (float(rng[0]), float(rng[1]))))
    return specs


def resize_bins(x: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Tensor[B x H x W] -> Tensor[B x n_bins x W]: area pooling to fewer rows, linear to more."""
    h = x.shape[-2]
    if h == n_bins:
        return x
    xt = x.transpose(-1, -2)  # B x W x H: resize the last axis
    out = F.adaptive_avg_pool1d(xt, n_bins) if n_bins < h else F.interpolate(xt, n_bins, mode="linear", align_corners=True)
    return out.transpose(-1, -2)


class SpectrogramNCA(nn.Module):
    """Grows Tensor[B x C x H x W] from a seed; `readout` gives {name: Tensor[B x n_bins x W]}.

    Args:
        channels: state channels C (the notebook: 16).
        alive_channel: index of the alive ("alpha") channel.
        hidden: widths of the per-cell MLP's hidden layers (notebook: [128, 64]).
        padding: "zero" | "circular", for perception and the alive max-pool.
        fire_rate: probability that a cell applies its update in a step (1.0: every cell, every step).
        alpha_bias_init: initial bias of the alive channel's update (notebook: 1.0; the other
            last-layer weights start at zero, so the first update is exactly this bias).
        alive: "soft" (notebook: state · maxpool3(clamp(alpha, 0, 1))) or "threshold"
            (Mordvintsev et al. 2020: a cell lives where maxpool3(alpha) > alive_threshold before
            and after the update).
        height, width: grid rows (frequency) and columns (frames).
        outputs: what the grid emits.
        floor, ceiling: compressed range that tanh is mapped onto.
    """

    def __init__(self, channels: int, alive_channel: int, hidden: Iterable[int], padding: str, fire_rate: float,
                 alpha_bias_init: float, alive: str, alive_threshold: float, height: int, width: int,
                 outputs: list[OutputSpec], floor: float, ceiling: float):
        super().__init__()
        if alive not in ALIVE_MODES:
            raise AaexpError(f"model.nca.alive={alive!r} is not one of {', '.join(ALIVE_MODES)}")
        if not 0.0 < fire_rate <= 1.0:
            raise AaexpError(f"model.nca.fire_rate={fire_rate} must be in (0, 1]")
        used = [alive_channel] + [o.channel for o in outputs]
        if max(used) >= channels or len(set(used)) != len(used):
            raise AaexpError(f"model: output channels {[o.channel for o in outputs]} and alive channel {alive_channel} "
                              f"must be distinct and < {channels}")
        self.channels, self.alive_channel = channels, alive_channel
        self.padding, self.fire_rate = padding, fire_rate
        self.alive_mode, self.alive_threshold = alive, alive_threshold
        self.height, self.width = height, width
        self.outputs = outputs
        self.floor, self.ceiling = floor, ceiling
        self.perception = Perception(channels, padding)
        widths = [4 * channels, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        last = nn.Linear(widths[-1], channels)
        with torch.no_grad():  # "do nothing" start, except the alive channel's bias (notebook)
            last.weight.zero_()
            last.bias.zero_()
            last.bias[alive_channel] = alpha_bias_init
        self.update = nn.Sequential(*layers, last)

    def seed(self, batch: int = 1, device=None) -> torch.Tensor:
        """One live cell at the centre (alive channel = 1), everything else zero."""
        x = torch.zeros(batch, self.channels, self.height, self.width, device=device)
        x[:, self.alive_channel, self.height // 2, self.width // 2] = 1.0
        return x

    def _alive(self, x: torch.Tensor) -> torch.Tensor:
        """maxpool3 of the alive channel, padded like perception: Tensor[B x 1 x H x W]."""
        a = x[:, self.alive_channel : self.alive_channel + 1]
        return F.max_pool2d(pad_grid(a, self.padding, value=float("-inf")), 3, stride=1)

    def alive_fraction(self, x: torch.Tensor) -> float:
        """Share of cells alive in a state; 0 means the grid is dead and can never change again."""
        a = self._alive(x.detach())
        return float((a > (self.alive_threshold if self.alive_mode == "threshold" else 0.0)).float().mean())

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One growth step: Tensor[B x C x H x W] -> same shape."""
        pre = self._alive(x) > self.alive_threshold if self.alive_mode == "threshold" else None
        p = self.perception(x).permute(0, 2, 3, 1)  # B x H x W x 4C: the MLP acts per cell
        dx = self.update(p).permute(0, 3, 1, 2)
        if self.fire_rate < 1.0:
            dx = dx * (torch.rand_like(dx[:, :1]) <= self.fire_rate).to(dx.dtype)
        x = x + dx
        a = self.alive_channel
        if self.alive_mode == "soft":
            x = torch.cat([x[:, :a], x[:, a : a + 1].clamp(0.0, 1.0), x[:, a + 1 :]], dim=1)
            return x * self._alive(x)
        post = self._alive(x) > self.alive_threshold
        return x * (pre & post).to(x.dtype)

    def grow(self, steps: int, x: torch.Tensor | None = None, record: list | None = None) -> torch.Tensor:
        """Run `steps` steps from `x` (default: the seed); append detached states to `record` if given."""
        x = self.seed(device=self.update[-1].weight.device) if x is None else x
        for _ in range(steps):
            x = self.step(x)
            if record is not None:
                record.append(x.detach())
        return x

    def to_range(self, v: torch.Tensor, spec: OutputSpec | None = None) -> torch.Tensor:
        """tanh onto [lo, hi] (the notebook: tanh·40 − 40 for [-80, 0] dB)."""
        lo, hi = spec.range if spec is not None and spec.range is not None else (self.floor, self.ceiling)
        return torch.tanh(v) * ((hi - lo) / 2.0) + (hi + lo) / 2.0

    def readout(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """{output name: compressed spectrogram Tensor[B x n_bins x W]}."""
        return {o.name: resize_bins(self.to_range(x[:, o.channel], o), o.n_bins) for o in self.outputs}
