"""Figures of the TNCA study: grown vs target spectrograms, their difference, the growth as a GIF."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np


def _unit(compression: str) -> str:
    return "dB (ref = max)" if compression == "db_ref_max" else "ln magnitude"


def spectrogram_comparison(grown: np.ndarray, target: np.ndarray, hop_s: float, compression: str,
                           title: str = "", vmin: float | None = None, vmax: float | None = None):
    """Target, grown and grown − target side by side; arrays ndarray[M x N] in compressed units."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vmin = float(target.min()) if vmin is None else vmin
    vmax = float(target.max()) if vmax is None else vmax
    extent = [0, grown.shape[1] * hop_s, 0, grown.shape[0]]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    for ax, img, name in [(axes[0], target, "target"), (axes[1], grown, "grown")]:
        im = ax.imshow(img, origin="lower", aspect="auto", extent=extent, vmin=vmin, vmax=vmax, cmap="magma")
        ax.set(title=name, xlabel="time (s)", ylabel="bin")
    fig.colorbar(im, ax=axes[:2], label=_unit(compression), shrink=0.9)
    diff = grown - target
    lim = float(np.abs(diff).max()) or 1.0
    im = axes[2].imshow(diff, origin="lower", aspect="auto", extent=extent, vmin=-lim, vmax=lim, cmap="coolwarm")
    axes[2].set(title="grown − target", xlabel="time (s)", ylabel="bin")
    fig.colorbar(im, ax=axes[2], label=_unit(compression), shrink=0.9)
    if title:
        fig.suptitle(title)
    return fig


def outputs_figure(grown: Mapping[str, np.ndarray], target: Mapping[str, np.ndarray], hop_s: float, compression: str, title: str):
    """One comparison row per output (multi-scale and dual runs emit several)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(grown)
    fig, axes = plt.subplots(len(names), 3, figsize=(15, 3.6 * len(names)), squeeze=False, constrained_layout=True)
    for row, name in zip(axes, names):
        g, t = grown[name], target[name]
        extent = [0, g.shape[1] * hop_s, 0, g.shape[0]]
        kw = dict(origin="lower", aspect="auto", extent=extent, cmap="magma", vmin=float(t.min()), vmax=float(t.max()))
        row[0].imshow(t, **kw)
        im = row[1].imshow(g, **kw)
        fig.colorbar(im, ax=row[:2], label=_unit(compression), shrink=0.9)
        d = g - t
        lim = float(np.abs(d).max()) or 1.0
        im = row[2].imshow(d, origin="lower", aspect="auto", extent=extent, cmap="coolwarm", vmin=-lim, vmax=lim)
        fig.colorbar(im, ax=row[2], shrink=0.9)
        for ax, what in zip(row, ["target", "grown", "grown − target"]):
            ax.set(title=f"{name}: {what}", xlabel="time (s)", ylabel="bin")
    fig.suptitle(title)
    return fig


def growth_gif(states: list[np.ndarray], path: Path, vmin: float, vmax: float, fps: int = 8) -> Path:
    """Animate the read-out channel over growth steps: list of ndarray[M x N] -> GIF at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    fig, ax = plt.subplots(figsize=(6, 4))
    im = ax.imshow(states[0], origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="magma")
    ax.set(xlabel="frame", ylabel="bin")

    def show(i):
        im.set_data(states[i])
        ax.set_title(f"growth {i + 1}/{len(states)}")
        return (im,)

    anim = FuncAnimation(fig, show, frames=len(states), blit=False)
    anim.save(str(path), writer=PillowWriter(fps=fps))
    plt.close(fig)
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
