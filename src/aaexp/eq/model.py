"""The EQ autoencoder: residual MLP encoder to a bounded latent, and the V1 / V2 decoders."""

from __future__ import annotations

import torch
from torch import nn

from aaexp.core.errors import AaexpError
from aaexp.eq.params import FREQ_IDX, GAIN_IDX, N_PARAMS, Q_IDX, PluginRanges


class ResidualBlock(nn.Module):
    """Linear-LayerNorm-ReLU-Dropout-Linear-LayerNorm plus a (projected) skip, then ReLU.

    Shape: Tensor[B x in_dim] -> Tensor[B x out_dim].
    """

    def __init__(self, in_dim: int, out_dim: int, dropout: float):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(in_dim, out_dim), nn.LayerNorm(out_dim), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(out_dim, out_dim), nn.LayerNorm(out_dim),
        )
        self.skip = nn.Identity() if in_dim == out_dim else nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


def _trunk(in_dim: int, hidden: list[int], dropout: float) -> tuple[nn.Sequential, int]:
    blocks, d = [], in_dim
    for h in hidden:
        blocks.append(ResidualBlock(d, h, dropout))
        d = h
    return nn.Sequential(*blocks), d


class Encoder(nn.Module):
    """13 normalised parameters -> latent in (-1, 1) (tanh) and a projection for the contrastive term.

    Shape: Tensor[B x 13] -> (Tensor[B x latent_dim], Tensor[B x embed_dim]).
    """

    def __init__(self, latent_dim: int, hidden: list[int], embed_dim: int, dropout: float):
        super().__init__()
        self.trunk, d = _trunk(N_PARAMS, hidden, dropout)
        self.to_latent = nn.Sequential(nn.Linear(d, 2 * latent_dim), nn.ReLU(), nn.Linear(2 * latent_dim, latent_dim), nn.Tanh())
        self.project = nn.Linear(latent_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.to_latent(self.trunk(x))
        return z, self.project(z)


class SigmoidDecoder(nn.Module):
    """V2: one head, sigmoid, so every output lies in the normaliser's [0, 1].

    Shape: Tensor[B x latent_dim] -> Tensor[B x 13].
    """

    def __init__(self, latent_dim: int, hidden: list[int], dropout: float):
        super().__init__()
        self.trunk, d = _trunk(latent_dim, list(reversed(hidden)), dropout)
        self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, N_PARAMS), nn.Sigmoid())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(z))


class MultiHeadDecoder(nn.Module):
    """V1: separate gain / frequency / Q heads, read by the z-score inverse (a linear map).

    `head_units="plugin"` is the original V1: the heads squash into plugin units (tanh x 12 dB,
    sigmoid into each band's Hz range, sigmoid into the Q range) although the targets and the
    inverse map are z-scores; training pulls the heads to their floors and decoding multiplies
    Hz by the z-score std, hence MHz frequencies. `head_units="normalised"`: plain linear heads
    in z-score units (values can still leave the valid range, nothing bounds them).

    Shape: Tensor[B x latent_dim] -> Tensor[B x 13].
    """

    def __init__(self, latent_dim: int, hidden: list[int], dropout: float, head_hidden: int,
                 head_units: str, ranges: PluginRanges):
        super().__init__()
        if head_units not in ("plugin", "normalised"):
            raise AaexpError(f"model.head_units={head_units!r} is not one of plugin, normalised")
        self.head_units = head_units
        self.trunk, d = _trunk(latent_dim, list(reversed(hidden)), dropout)

        def head(n: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(d, head_hidden), nn.ReLU(), nn.Linear(head_hidden, n))

        self.gain, self.freq, self.q = head(len(GAIN_IDX)), head(len(FREQ_IDX)), head(len(Q_IDX))
        lo, hi = torch.tensor(ranges.bounds(), dtype=torch.float32)
        self.register_buffer("lo", lo)
        self.register_buffer("hi", hi)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.trunk(z)
        g, f, q = self.gain(h), self.freq(h), self.q(h)
        if self.head_units == "plugin":
            g = torch.tanh(g) * self.hi[GAIN_IDX]
            f = torch.sigmoid(f) * (self.hi[FREQ_IDX] - self.lo[FREQ_IDX]) + self.lo[FREQ_IDX]
            q = torch.sigmoid(q) * (self.hi[Q_IDX] - self.lo[Q_IDX]) + self.lo[Q_IDX]
        out = torch.empty(z.shape[0], N_PARAMS, device=z.device, dtype=h.dtype)
        out[:, GAIN_IDX], out[:, FREQ_IDX], out[:, Q_IDX] = g, f, q
        return out


class EqAutoencoder(nn.Module):
    """Encoder + decoder over normalised parameters.

    forward: Tensor[B x 13] -> (reconstruction Tensor[B x 13], latent Tensor[B x latent_dim],
    projection Tensor[B x embed_dim]).
    """

    def __init__(self, encoder: Encoder, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z, e = self.encoder(x)
        return self.decoder(z), z, e


def build(cfg, ranges: PluginRanges) -> EqAutoencoder:
    """The autoencoder that `cfg.model` describes."""
    hidden = list(cfg.hidden)
    enc = Encoder(cfg.latent_dim, hidden, cfg.embed_dim, cfg.dropout)
    if cfg.decoder == "sigmoid":
        dec = SigmoidDecoder(cfg.latent_dim, hidden, cfg.dropout)
    elif cfg.decoder == "multihead":
        dec = MultiHeadDecoder(cfg.latent_dim, hidden, cfg.dropout, cfg.head_hidden, cfg.head_units, ranges)
    else:
        raise AaexpError(f"model.decoder={cfg.decoder!r} is not one of sigmoid, multihead")
    return EqAutoencoder(enc, dec)
