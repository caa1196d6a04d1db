"""NAM WaveNet .nam files of both format generations, run by neural-amp-modeler's own WaveNet.

Format 0.5.x (most shared files) describes each layer array with `head_size`/`head_bias`/`gated`;
0.6+/0.7 (neural-amp-modeler 0.13) with a `head` object, per-layer activation lists and more.
neural-amp-modeler 0.13 refuses the old files, so their config is converted to the new form and
the network is built by nam's own builder; the two generations order their weights identically
(rechannel, per layer conv/input-mixer/1x1, head rechannel; then the optional head; then the head
scale), so the weight list is used as it is. The file is written back with its original config.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .errors import ModelFileError

# Keys a 0.5.x layer array may carry, with neural-amp-modeler 0.5-0.12's defaults for the optional ones.
_LEGACY_LAYER_REQUIRED = ("input_size", "condition_size", "head_size", "channels", "kernel_size", "dilations")
_LEGACY_LAYER_DEFAULTS = {"activation": "Tanh", "gated": True, "head_bias": True}
_LEGACY_HEAD_KEYS = {"channels", "activation", "num_layers", "out_channels"}
_CONFIG_KEYS = {"layers", "head", "head_scale"}


def _convert_legacy_layer_array(lc: dict, path: Path, index: int) -> dict:
    """One 0.5.x layer array config -> the .nam 0.7 form that nam 0.13's builder reads."""
    unknown = set(lc) - set(_LEGACY_LAYER_REQUIRED) - set(_LEGACY_LAYER_DEFAULTS)
    missing = [k for k in _LEGACY_LAYER_REQUIRED if k not in lc]
    if unknown or missing:
        raise ModelFileError(path, f"layer array {index}: " + "; ".join(
            ([f"unknown keys {sorted(unknown)}"] if unknown else []) + ([f"missing keys {missing}"] if missing else [])))
    lc = {**_LEGACY_LAYER_DEFAULTS, **lc}
    n = len(lc["dilations"])
    gated = bool(lc["gated"])
    return {
        "input_size": lc["input_size"],
        "condition_size": lc["condition_size"],
        # 0.5.x: the head rechannel is a 1x1 conv from `channels` to `head_size`
        "head": {"out_channels": lc["head_size"], "kernel_size": 1, "bias": bool(lc["head_bias"])},
        "channels": lc["channels"],
        "kernel_sizes": [lc["kernel_size"]] * n,
        "dilations": list(lc["dilations"]),
        "activation": [lc["activation"]] * n,
        # 0.5.x gating: activation(first half) * sigmoid(second half), i.e. nam 0.13's PairMultiply
        "gating_mode": ["gated" if gated else "none"] * n,
        "secondary_activation": ["Sigmoid" if gated else None] * n,
        "bottleneck": lc["channels"],
        "layer1x1": {"active": True, "groups": 1},
        "head1x1": {"active": False, "out_channels": 1, "groups": 1},
    }


def _convert_legacy_head(head: dict | None, path: Path) -> dict | None:
    """0.5.x whole-network head {channels, activation, num_layers, out_channels} -> 0.7 form (1x1 convs)."""
    if head is None:
        return None
    if set(head) != _LEGACY_HEAD_KEYS:
        raise ModelFileError(path, f"head: expected keys {sorted(_LEGACY_HEAD_KEYS)}, got {sorted(head)}")
    return {"channels": head["channels"], "activation": head["activation"], "out_channels": head["out_channels"],
            "kernel_sizes": [1] * int(head["num_layers"])}


def is_legacy(config: dict, path: Path) -> bool:
    """True for 0.5.x layer arrays (`head_size`), False for 0.6+ (`head` object)."""
    layers = config.get("layers")
    if not isinstance(layers, list) or not layers or not all(isinstance(lc, dict) for lc in layers):
        raise ModelFileError(path, "WaveNet config has no list of layer arrays under 'layers'")
    kinds = {("head_size" in lc, "head" in lc) for lc in layers}
    if kinds == {(True, False)}:
        return True
    if kinds == {(False, True)}:
        return False
    raise ModelFileError(path, "WaveNet layer arrays must all have either 'head_size' (format 0.5) or a 'head' object (0.6+)")


def current_form(config: dict, path: Path) -> dict:
    """The config as nam 0.13's .nam reader expects it (0.5.x converted, 0.6+ as is)."""
    unknown = set(config) - _CONFIG_KEYS - ({"condition_dsp"} if "condition_dsp" in config else set())
    if unknown:
        raise ModelFileError(path, f"WaveNet config: unknown keys {sorted(unknown)}")
    if config.get("condition_dsp") is not None:
        raise ModelFileError(path, "WaveNets with a condition_dsp submodel are not supported")
    if any((lc.get("slimmable") is not None) for lc in config["layers"]):
        raise ModelFileError(path, "slimmable WaveNets are not supported (training would slim them at random)")
    if not is_legacy(config, path):
        return {"layers": config["layers"], "head": config.get("head"), "head_scale": config.get("head_scale", 1.0)}
    return {"layers": [_convert_legacy_layer_array(lc, path, i) for i, lc in enumerate(config["layers"])],
            "head": _convert_legacy_head(config.get("head"), path), "head_scale": config.get("head_scale", 1.0)}


class NamWaveNetCore(nn.Module):
    """neural-amp-modeler's WaveNet made causal and same-length: Tensor[B x T] -> Tensor[B x T].

    The head scale is taken from the last weight (what the NAM plugins do), not from the config:
    0.5.x files store 0.02 in the config and float32(0.02) as the weight.
    """

    def __init__(self, nam_net: nn.Module, head_scale: float):
        super().__init__()
        self.nam = nam_net
        self.head_scale = float(head_scale)
        self.nam._net._head_scale = self.head_scale
        # Parameters outside convolutions (e.g. PReLU slopes) live in the config, which is
        # written back unchanged, so fine-tuning must not move them.
        for module in self.nam.modules():
            if not isinstance(module, nn.Conv1d):
                for p in module.parameters(recurse=False):
                    p.requires_grad_(False)

    @property
    def receptive_field(self) -> int:
        return int(self.nam.receptive_field)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_chunk(x, None)[0]

    def forward_chunk(self, x: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """state = the previous receptive_field - 1 input samples, Tensor[B x (R-1)] (None: zeros)."""
        r = self.receptive_field - 1
        if state is None:
            state = x.new_zeros(x.shape[0], r)
        xx = torch.cat([state.to(x), x], dim=1)
        y = self.nam(xx, pad_start=False)
        return y, xx[:, xx.shape[1] - r:]

    def export_weights(self) -> list[float]:
        """The flat weight list in nam's order, head scale last (exact, in the parameters' precision)."""
        w = self.nam._export_weights().tolist()
        w[-1] = self.head_scale  # nam rounds it through float32
        return w


def build(config: dict, weights: list, sample_rate: float | None, dtype: torch.dtype, path: Path) -> NamWaveNetCore:
    """Build the WaveNet of a .nam file's config and load its weights in `dtype` (exactly)."""
    from nam.models._from_nam import _init_wavenet  # nam's own config -> WaveNet builder (pinned nam 0.13)

    try:
        net = _init_wavenet(current_form(config, path), sample_rate).to(dtype)
    except ModelFileError:
        raise
    except Exception as exc:  # nam raises KeyError/ValueError/pydantic errors for bad configs
        raise ModelFileError(path, f"invalid WaveNet config: {type(exc).__name__}: {exc}") from exc
    needed = len(net._export_weights())
    if len(weights) != needed:
        raise ModelFileError(path, f"weight count {len(weights)} does not match the config, which needs {needed}")
    net.import_weights(torch.tensor(weights, dtype=dtype))
    return NamWaveNetCore(net.eval(), head_scale=weights[-1])
