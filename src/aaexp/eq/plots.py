"""Figures of an EQ run: magnitude responses of decoded settings, the latent space, the losses."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

from aaexp.eq.biquad import log_freqs, response_db  # noqa: E402
from aaexp.eq.evaluation import Decoded, Evaluation  # noqa: E402


def _draw(ax, d: Decoded, freqs, fs, shelf_q, **kw) -> None:
    r, clipped = response_db(d.params, freqs, fs, shelf_q)
    label = d.name if d.valid else f"{d.name} (INVALID{', drawn clipped to Nyquist' if clipped else ''})"
    ax.semilogx(freqs, r, label=label, linestyle="-" if d.valid else "--", **kw)


def responses(descriptors: list[Decoded], interpolation: list[Decoded], ev_cfg, shelf_q: float, title: str):
    """Left: the decoded descriptors; right: the interpolation steps. Returns a Figure."""
    rc = ev_cfg.response
    fs, freqs = float(rc.sample_rate), log_freqs(float(rc.f_min_hz), float(rc.f_max_hz), int(rc.n_freqs))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    for d in descriptors:
        _draw(axes[0], d, freqs, fs, shelf_q, linewidth=2)
    cmap = plt.get_cmap("coolwarm")
    for i, d in enumerate(interpolation):
        _draw(axes[1], d, freqs, fs, shelf_q, color=cmap(i / max(len(interpolation) - 1, 1)))
    for ax, t in zip(axes, ["decoded from latent centroids", "interpolation between centroids"]):
        for lo_hi, c in ((ev_cfg.semantic.low_mid_hz, "tab:orange"), (ev_cfg.semantic.high_hz, "tab:blue")):
            ax.axvspan(*lo_hi, color=c, alpha=0.06)
        ax.axhline(0, color="k", linewidth=0.6)
        ax.set_xlabel("frequency (Hz)")
        ax.set_title(t)
        ax.grid(True, which="both", alpha=0.25)
        if ax.get_legend_handles_labels()[1]:  # an empty legend is a matplotlib warning on stderr
            ax.legend(fontsize=7)
    axes[0].set_ylabel(f"magnitude (dB), RBJ biquads at {fs / 1000:g} kHz")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def latent_projection(ev: Evaluation, labels: list[str], top_k: int, interpolate: list[str], title: str):
    """2-D PCA of every row's latent code, coloured by descriptor; centroids and the interpolation path."""
    pca = PCA(n_components=2).fit(ev.latent)
    xy = pca.transform(ev.latent)
    labels = np.asarray(labels)
    words, counts = np.unique(labels, return_counts=True)
    top = list(words[np.argsort(-counts, kind="stable")][:top_k])
    fig, ax = plt.subplots(figsize=(7, 6))
    other = ~np.isin(labels, top)
    if other.any():
        ax.scatter(*xy[other].T, s=8, c="lightgrey", label="other")
    for i, w in enumerate(top):
        sel = labels == w
        ax.scatter(*xy[sel].T, s=10, alpha=0.6, color=plt.get_cmap("tab10")(i % 10), label=f"{w} ({sel.sum()})")
    for w in interpolate:
        if w in ev.centroids:
            cx, cy = pca.transform(ev.centroids[w][None])[0]
            ax.scatter([cx], [cy], marker="X", s=160, c="k")
            ax.annotate(w, (cx, cy), textcoords="offset points", xytext=(6, 6), fontweight="bold")
    if len(ev.interp_path):
        path = pca.transform(ev.interp_path)
        ax.plot(*path.T, "k-o", markersize=3, linewidth=1, label="interpolation")
    ev_ratio = pca.explained_variance_ratio_
    ax.set_xlabel(f"PC1 ({ev_ratio[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({ev_ratio[1]:.0%} of variance)")
    ax.set_title(title)
    ax.legend(fontsize=7, markerscale=1.5)
    fig.tight_layout()
    return fig


def losses(history: dict[str, list[float]], title: str):
    """Reconstruction and contrastive losses per epoch, with the contrastive weight."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, key in zip(axes, ["recon", "contrastive"]):
        for split in ("train", "val"):
            vals = history.get(f"{split}/{key}")
            if vals:
                ax.plot(np.arange(1, len(vals) + 1), vals, label=split)
        ax.set_yscale("log" if key == "recon" else "linear")
        ax.set_xlabel("epoch")
        ax.set_title(f"{key} loss" + (" (normalised units)" if key == "recon" else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    w = history.get("train/contrastive_weight")
    if w:
        tw = axes[1].twinx()
        tw.plot(np.arange(1, len(w) + 1), w, "k:", label="weight")
        tw.set_ylabel("contrastive weight")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
