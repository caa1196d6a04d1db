"""Losses of the TNCA study, each a small module; `SpectrogramLoss` combines them by name."""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from aaexp.core.errors import AaexpError
from aaexp.tnca.nca import OutputSpec

WEIGHT_SHAPES = ("none", "linspace", "exp")
WEIGHT_APPLY = ("per_bin", "scalar")


def frequency_weights(n_bins: int, shape: str = "linspace", low: float = 1.0, high: float = 2.0) -> torch.Tensor:
    """Loss weight per frequency bin, lowest bin first: Tensor[n_bins].

    "linspace": low .. high evenly; "exp": low .. high geometrically (evenly in log weight);
    "none": all ones.
    """
    if shape == "none":
        return torch.ones(n_bins)
    if shape == "linspace":
        return torch.linspace(low, high, n_bins)
    if shape == "exp":
        return torch.exp(torch.linspace(math.log(low), math.log(high), n_bins))
    raise AaexpError(f"loss.freq_weight.shape={shape!r} is not one of {', '.join(WEIGHT_SHAPES)}")


class GramLoss(nn.Module):
    """Texture loss: MSE between Gram matrices of features from a fixed, untrained CNN.

    As in the original notebook (after Gatys et al. 2015 and the texture-NCA work): three
    stride-2 convolutions with ReLU, weights random and frozen; Gram = F Fᵀ / (c·h·w).

    Args:
        channels: output channels of the three convolutions (notebook: 16, 32, 64).
        kernels: kernel sizes (notebook: 7, 5, 3); padding k//2, stride 2.
        seed: seed of the random weights, so the features do not depend on the run's RNG state.

    Shape: input and target Tensor[B x H x W] -> scalar.
    """

    def __init__(self, channels=(16, 32, 64), kernels=(7, 5, 3), seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(int(seed))
        layers: list[nn.Module] = []
        c_in = 1
        for c_out, k in zip(channels, kernels):
            conv = nn.Conv2d(c_in, c_out, k, 2, k // 2)
            bound_w = 1.0 / math.sqrt(c_in * k * k)  # PyTorch's default init range, drawn from our generator
            with torch.no_grad():
                conv.weight.uniform_(-bound_w, bound_w, generator=gen)
                conv.bias.uniform_(-bound_w, bound_w, generator=gen)
            layers += [conv, nn.ReLU()]
            c_in = c_out
        self.features = nn.Sequential(*layers).requires_grad_(False)

    @staticmethod
    def gram(f: torch.Tensor) -> torch.Tensor:
        b, c, h, w = f.shape
        f = f.reshape(b, c, h * w)
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.gram(self.features(input.unsqueeze(1))), self.gram(self.features(target.unsqueeze(1))))


class FrequencyWeightedL1(nn.Module):
    """Mean of |input − target| · w[bin], the weight applied per bin before the reduction.

    Args:
        weights: Tensor[F], one weight per frequency bin (row).

    Shape: input and target Tensor[B x F x N] -> scalar.
    """

    def __init__(self, weights: torch.Tensor):
        super().__init__()
        self.register_buffer("weights", weights.view(1, -1, 1).float(), persistent=False)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((input - target).abs() * self.weights).mean()


class SpectrogramLoss(nn.Module):
    """Gram + L1 per output, weighted per output, optionally masked and frequency-weighted.

    Config (`loss`): gram_weight, l1_weight, mask_below (target cells below it, in compressed
    units, are zeroed in both spectrograms, as the notebook did; null: no mask), freq_weight
    {shape, low, high, apply}, gram_cnn {channels, kernels, seed}.

    `freq_weight.apply`:
      - "per_bin": weights multiply the L1 map per bin before the mean (the fix);
      - "scalar": the notebook's bug, kept to reproduce it: the already-reduced scalar loss
        (2·Gram + 0.1·L1) is multiplied by linspace(1, 2, n_mels) and averaged again, which only
        rescales the loss by mean(w) and weights no bin.

    forward(outputs, targets) -> {metric name: value}, "loss/total" being the sum that is trained.
    """

    def __init__(self, cfg: Mapping[str, Any], specs: list[OutputSpec]):
        super().__init__()
        fw = cfg["freq_weight"]
        if fw["apply"] not in WEIGHT_APPLY:
            raise AaexpError(f"loss.freq_weight.apply={fw['apply']!r} is not one of {', '.join(WEIGHT_APPLY)}")
        self.apply_mode = fw["apply"]
        self.specs = specs
        self.gram_weight, self.l1_weight = float(cfg["gram_weight"]), float(cfg["l1_weight"])
        self.mask_below = cfg.get("mask_below")
        g = cfg["gram_cnn"]
        self.gram = GramLoss(tuple(g["channels"]), tuple(g["kernels"]), g["seed"])
        self.l1 = nn.ModuleDict()
        for s in specs:
            w = frequency_weights(s.n_bins, fw["shape"], fw["low"], fw["high"])
            self.l1[s.name] = FrequencyWeightedL1(w if self.apply_mode == "per_bin" else torch.ones(s.n_bins))
            self.register_buffer(f"scalar_w_{s.name}", w.view(1, 1, -1, 1), persistent=False)

    def forward(self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        terms: dict[str, torch.Tensor] = {}
        total = 0.0
        for s in self.specs:
            gen, tgt = outputs[s.name], targets[s.name]
            if self.mask_below is not None:
                mask = (tgt > float(self.mask_below)).to(gen.dtype)
                gen, tgt = gen * mask, tgt * mask
            zero = gen.new_zeros(())
            terms[f"loss/gram_{s.name}"] = self.gram(gen, tgt) if (s.gram and self.gram_weight) else zero
            terms[f"loss/l1_{s.name}"] = self.l1[s.name](gen, tgt)
            part = self.gram_weight * terms[f"loss/gram_{s.name}"] + self.l1_weight * terms[f"loss/l1_{s.name}"]
            if self.apply_mode == "scalar":
                # BUG kept on purpose (baseline): a scalar times per-bin weights, then mean -> part·mean(w).
                part = (part * getattr(self, f"scalar_w_{s.name}")).mean()
            terms[f"loss/{s.name}"] = part
            total = total + s.weight * part
        terms["loss/total"] = total
        return terms


class MultiResolutionSTFTLoss(nn.Module):
    """Audio-domain loss: auraloss's multi-resolution STFT loss (spectral convergence + log magnitude).

    Yamamoto et al., "Parallel WaveGAN", ICASSP 2020; implementation: auraloss
    (Steinmetz & Reiss 2020). Args are auraloss's (fft_sizes, hop_sizes, win_lengths).

    Shape: input and target Tensor[B x T] -> scalar.
    """

    def __init__(self, fft_sizes, hop_sizes, win_lengths):
        super().__init__()
        import auraloss

        self.loss = auraloss.freq.MultiResolutionSTFTLoss(list(fft_sizes), list(hop_sizes), list(win_lengths))

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        n = min(input.shape[-1], target.shape[-1])
        return self.loss(input[..., :n].unsqueeze(1), target[..., :n].unsqueeze(1))
