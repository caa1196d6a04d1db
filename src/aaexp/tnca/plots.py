"""Figures of the TNCA study: grown vs target spectrograms, their difference, the growth as a GIF."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np


def _unit(compression: str) -> str:
    return "dB (ref = max)" if compression == "db_ref_max" else "ln magnitude"


def outputs_figure(grown: Mapping[str, np.ndarray], target: Mapping[str, np.ndarray], hop_s: float, compression: str, title: str):
    """One comparison row per output (multi-scale and dual runs emit several)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(grown)
    fig, axes = plt.subplots(len(names), 3, figsize=(15, 3.6 * len(names)), squeeze=False)
    # A fixed layout (constrained_layout costs seconds per image); room at the top for the title.
    fig.subplots_adjust(wspace=0.35, hspace=0.45, top=1 - 0.5 / (3.6 * len(names)))
    for row, name in zip(axes, names):
        g, t = grown[name], target[name]
        extent = [0, g.shape[1] * hop_s, 0, g.shape[0]]
        kw = dict(origin="lower", aspect="auto", extent=extent, cmap="magma", vmin=float(t.min()), vmax=float(t.max()))
        row[0].imshow(t, **kw)
        im = row[1].imshow(g, **kw)
        fig.colorbar(im, ax=row[1], label=_unit(compression))
        d = g - t
        lim = float(np.abs(d).max()) or 1.0
        im = row[2].imshow(d, origin="lower", aspect="auto", extent=extent, cmap="coolwarm", vmin=-lim, vmax=lim)
        fig.colorbar(im, ax=row[2])
        for ax, what in zip(row, ["target", "grown", "grown − target"]):
            ax.set(title=f"{name}: {what}", xlabel="time (s)", ylabel="bin")
    fig.suptitle(title)
    return fig


def growth_gif(states: list[np.ndarray], path: Path, vmin: float, vmax: float, fps: int = 8, scale: int = 4) -> Path:
    """Animate the read-out channel over growth steps: list of ndarray[M x N] -> GIF at `path`.

    Frames are colour-mapped arrays written by Pillow directly (low frequencies at the bottom),
    not drawn by matplotlib: a hundred frames take well under a second.
    """
    from matplotlib import colormaps
    from PIL import Image

    cmap = colormaps["magma"]
    frames = []
    for a in states:
        norm = np.clip((np.asarray(a, dtype=np.float64) - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
        rgb = (cmap(norm[::-1])[..., :3] * 255).astype(np.uint8)
        frames.append(Image.fromarray(rgb).resize((rgb.shape[1] * scale, rgb.shape[0] * scale), Image.NEAREST))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    return path


def loss_curve(history: Mapping[str, list[tuple[int, float]]]):
    """Loss terms over iterations (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    for name, pts in history.items():
        if pts:
            it, v = zip(*pts)
            ax.plot(it, v, label=name)
    ax.set(xlabel="iteration", ylabel="loss", yscale="log")
    ax.legend(fontsize=8)
    return fig
