"""Plots of an evaluation: per-band bars with thresholds, per-tone curves, sweep spectrograms.

The sweep is a log sine sweep 20 Hz -> 20 kHz: harmonics rise with it as straight lines on a log
frequency axis, while aliases fold back down and show as lines falling against them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

MODEL_COLOURS = {"teacher": "tab:gray", "baseline": "tab:orange", "student": "tab:blue",
                 "teacher ×2": "tab:green", "teacher ×4": "tab:olive", "teacher ×8": "tab:cyan"}


def log_sweep(fs: int, cfg_sweep, dtype=torch.float64, device=None) -> torch.Tensor:
    """Tensor[1 x T]: exponential sine sweep A·sin(2π f1 L (e^(t/L) - 1)), L = T / ln(f2/f1)."""
    f1 = float(cfg_sweep.f_start_hz)
    f2 = min(float(cfg_sweep.f_end_hz), 0.95 * fs / 2)
    dur = float(cfg_sweep.seconds)
    t = torch.arange(round(dur * fs), dtype=torch.float64) / fs
    rate = dur / math.log(f2 / f1)
    x = 10.0 ** (float(cfg_sweep.level_dbfs) / 20.0) * torch.sin(2 * math.pi * f1 * rate * torch.expm1(t / rate))
    return x.to(device=device, dtype=dtype).unsqueeze(0)


def spectrogram_db(y: torch.Tensor, n_fft: int, hop: int) -> np.ndarray:
    """ndarray[F x frames]: Hann STFT power in dB re the largest bin. y: Tensor[T]."""
    y = y.detach().to("cpu", torch.float64)
    win = torch.hann_window(n_fft, dtype=torch.float64)
    power = torch.stft(y, n_fft, hop, window=win, center=True, return_complex=True).abs().pow(2)
    return (10.0 * torch.log10(power / power.max().clamp_min(1e-300) + 1e-30)).numpy()


def _figure(ncols: int, nrows: int = 1, width: float = 5.0, height: float = 3.6):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def band_bars(rows: list[dict], thresholds: dict[str, float], floor_db: float):
    """Grouped bars, one panel per metric (NMR-S, HESR-R), one colour per model; dashed threshold."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    bands = list(dict.fromkeys(r["band"] for r in rows))
    fig, axes = _figure(2)
    width = 0.8 / max(1, len(models))
    for ax, (key, label, thr) in zip(axes[0], [("nmr_s_db", "NMR-S (dB)", thresholds["nmr_s_db"]),
                                               ("hesr_r_db", "HESR-R (dB)", thresholds["hesr_r_db"])]):
        for i, model in enumerate(models):
            vals = [next(r[key] for r in rows if r["model"] == model and r["band"] == b) for b in bands]
            xs = np.arange(len(bands)) + (i - (len(models) - 1) / 2) * width
            heights = [v - floor_db if not math.isnan(v) else 0.0 for v in vals]
            ax.bar(xs, heights, width, bottom=floor_db, label=model, color=MODEL_COLOURS.get(model))
            for x, v in zip(xs, vals):
                if math.isnan(v):
                    ax.text(x, floor_db, "n/a", rotation=90, ha="center", va="bottom", fontsize=7)
        ax.axhline(thr, color="tab:red", linestyle="--", linewidth=1, label=f"threshold {thr:g} dB")
        ax.set_xticks(range(len(bands)), bands)
        ax.set_ylabel(label)
        ax.set_xlabel("band (Hz)")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    return fig


def tone_curves(f0: np.ndarray, per_model: dict[str, dict[str, np.ndarray]], thresholds: dict[str, float], levels: np.ndarray):
    """NMR-S and HESR-R against f0 (log axis) for every model and level."""
    fig, axes = _figure(2)
    multi = len(np.unique(levels)) > 1
    for ax, (key, label, thr) in zip(axes[0], [("nmr_s", "NMR-S (dB)", thresholds["nmr_s_db"]),
                                               ("hesr_r", "HESR-R (dB)", thresholds["hesr_r_db"])]):
        for model, scores in per_model.items():
            for lev in np.unique(levels):
                sel = levels == lev
                if np.all(np.isnan(scores[key][sel])):
                    continue
                name = f"{model} {lev:g} dBFS" if multi else model
                ax.semilogx(f0[sel], scores[key][sel], marker=".", label=name, color=MODEL_COLOURS.get(model))
        ax.axhline(thr, color="tab:red", linestyle="--", linewidth=1)
        ax.set_xlabel("f0 (Hz)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].legend(fontsize=8)
    return fig


def log_frequency_rows(spec: np.ndarray, fs: int, f_lo: float = 20.0, rows: int = 480) -> tuple[np.ndarray, np.ndarray]:
    """Resample spectrogram rows onto log-spaced frequencies (for a fast imshow): (image, log10 f)."""
    f = np.linspace(0, fs / 2, spec.shape[0])
    logf = np.linspace(np.log10(f_lo), np.log10(fs / 2), rows)
    img = np.stack([np.interp(10.0**logf, f, spec[:, j]) for j in range(spec.shape[1])], axis=1)
    return img, logf


def sweep_spectrograms(specs: dict[str, np.ndarray], fs: int, hop: int, dynamic_range_db: float):
    """One spectrogram per model on a shared colour scale, log frequency axis."""
    fig, axes = _figure(len(specs), width=4.6)
    im = None
    ticks = [t for t in (20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000) if t <= fs / 2]
    for ax, (model, spec) in zip(axes[0], specs.items()):
        img, logf = log_frequency_rows(spec, fs)
        extent = (0.0, spec.shape[1] * hop / fs, float(logf[0]), float(logf[-1]))
        im = ax.imshow(img, origin="lower", aspect="auto", extent=extent, vmin=-dynamic_range_db, vmax=0,
                       cmap="magma", interpolation="nearest")
        ax.set_yticks(np.log10(ticks), [f"{t / 1000:g}k" if t >= 1000 else f"{t}" for t in ticks])
        ax.set_title(f"{model}: log sweep")
        ax.set_xlabel("time (s)")
    axes[0][0].set_ylabel("frequency (Hz)")
    if im is not None:
        fig.colorbar(im, ax=axes[0].tolist(), label="dB re max")
    return fig


def audio_spectrograms(specs: dict[str, np.ndarray], fs: int, hop: int, dynamic_range_db: float):
    """The real-audio check's sides side by side (linear frequency, where aliases show as lines
    falling against the notes' harmonics), one colour scale in dB re full scale for all."""
    fig, axes = _figure(len(specs), width=4.2, height=3.4)
    top = max(float(s.max()) for s in specs.values())
    vmax = 10.0 * math.ceil(top / 10.0)
    im = None
    for ax, (side, spec) in zip(axes[0], specs.items()):
        extent = (0.0, spec.shape[1] * hop / fs, 0.0, fs / 2000.0)
        im = ax.imshow(spec, origin="lower", aspect="auto", extent=extent, vmin=vmax - dynamic_range_db, vmax=vmax,
                       cmap="magma", interpolation="nearest")
        ax.set_title(side.replace("_x", " ×"))
        ax.set_xlabel("time (s)")
    axes[0][0].set_ylabel("frequency (kHz)")
    if im is not None:
        fig.colorbar(im, ax=axes[0].tolist(), label="dB re full scale")
    return fig
