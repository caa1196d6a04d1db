"""What an NCA cell sees: identity, Sobel x/y and a Laplacian of every channel (depthwise 3×3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aaexp.core.errors import AaexpError

IDENTITY = [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
SOBEL_X = [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]  # d/d(time): along the grid's width
# The original notebook's 9-point Laplacian (weights sum to zero; a ramp gives 0, x² gives 8).
LAPLACIAN = [[1.0, 2.0, 1.0], [2.0, -12.0, 2.0], [1.0, 2.0, 1.0]]
PADDINGS = ("zero", "circular")


def pad_grid(x: torch.Tensor, padding: str, value: float = 0.0) -> torch.Tensor:
    """Pad one cell on each side: zeros (the notebook) or wrap-around (a torus, no edges)."""
    if padding == "circular":
        return F.pad(x, (1, 1, 1, 1), mode="circular")
    return F.pad(x, (1, 1, 1, 1), mode="constant", value=value)


class Perception(nn.Module):
    """Fixed depthwise filters: Tensor[B x C x H x W] -> Tensor[B x 4C x H x W].

    Output channel order is [identity(C), sobel_x(C), sobel_y(C), laplacian(C)], as the notebook
    concatenated them. Sobel y is Sobel x transposed (d/d(frequency), along the grid's height).

    Args:
        channels: state channels C.
        padding: "zero" (the notebook) or "circular".
    """

    def __init__(self, channels: int, padding: str = "zero"):
        super().__init__()
        if padding not in PADDINGS:
            raise AaexpError(f"model.nca.padding={padding!r} is not one of {', '.join(PADDINGS)}")
        self.channels = channels
        self.padding = padding
        sobel_x = torch.tensor(SOBEL_X)
        bank = torch.stack([torch.tensor(IDENTITY), sobel_x, sobel_x.T.contiguous(), torch.tensor(LAPLACIAN)])
        # groups=C: output channels 4c..4c+3 are the four kernels applied to input channel c
        self.register_buffer("kernels", bank[:, None].repeat(channels, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # groups=C with 4 kernels per group gives [c0k0, c0k1, c0k2, c0k3, c1k0, ...]; reorder below.
        y = F.conv2d(pad_grid(x, self.padding), self.kernels, groups=self.channels)
        b, _, h, w = y.shape
        return y.view(b, self.channels, 4, h, w).transpose(1, 2).reshape(b, 4 * self.channels, h, w)
