"""Audio measures: of one file (level, brightness) and of a file against a reference (distances).

How each number is computed (these reproduce the original diagnosis of the shared files):
- duration, sample rate: of the file as stored.
- peak_min / peak_max, rms: over the mono mix (mean of the channels) at the file's own rate.
- centroid_hz: librosa.feature.spectral_centroid of the mono mix at the file's own rate, with
  librosa's defaults (n_fft 2048, hop 512, centred frames, zero padding), mean over frames.
- Pairwise: both mono-mixed, the reference resampled (soxr_hq) to the compared rate (default:
  the audio's), both cut to the shorter length, frames compared one to one (no time alignment).
  lsd_db: mean over frames of sqrt(mean over bins of (10·log10 P − 10·log10 P_ref)²), P = |STFT|².
  mrstft: auraloss MultiResolutionSTFTLoss (spectral convergence + L1 log magnitude, 3 resolutions).
  mcd_db: (10 / ln 10)·sqrt(2·Σ_{d=1..D-1} (c_d − c_ref,d)²), mean over frames, with c = the
  orthonormal DCT-II of the natural-log mel magnitude (0.5·ln mel power), c_0 (level) left out.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch

from aaexp.core import tables


def mono(audio: np.ndarray) -> np.ndarray:
    """ndarray[T] or ndarray[C x T] -> ndarray[T], the mean of the channels."""
    a = np.asarray(audio, dtype=np.float64)
    return a if a.ndim == 1 else a.mean(axis=0)


def describe(audio: np.ndarray, sample_rate: int, cfg: Mapping[str, Any]) -> dict[str, float]:
    """Single-file measures of ndarray[T] or ndarray[C x T] (see the module docstring)."""
    import librosa

    a = np.asarray(audio, dtype=np.float64)
    m = mono(a)
    if np.any(m):
        cen = librosa.feature.spectral_centroid(y=m, sr=sample_rate, n_fft=cfg["centroid"]["n_fft"],
                                                hop_length=cfg["centroid"]["hop_length"])
    else:  # librosa says 0 Hz for silence; there is no spectrum to take a centroid of
        cen = np.array([math.nan])
    return {
        "duration_s": a.shape[-1] / sample_rate,
        "sample_rate": float(sample_rate),
        "channels": float(1 if a.ndim == 1 else a.shape[0]),
        "peak_min": float(m.min()),
        "peak_max": float(m.max()),
        "rms": float(np.sqrt(np.mean(m**2))),
        "centroid_hz": float(np.mean(cen)),
    }


def log_spectral_distance(x: np.ndarray, y: np.ndarray, n_fft: int, hop_length: int, eps: float) -> float:
    """LSD in dB between two equal-length mono signals."""
    import librosa

    px = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop_length)) ** 2
    py = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length)) ** 2
    d = 10 * np.log10(px + eps) - 10 * np.log10(py + eps)
    return float(np.mean(np.sqrt(np.mean(d**2, axis=0))))


def mel_cepstra(x: np.ndarray, sr: int, n_mfcc: int, n_mels: int, n_fft: int, hop_length: int, eps: float) -> np.ndarray:
    """Cepstra of the ln mel magnitude: ndarray[n_mfcc x N]."""
    import librosa

    mel = librosa.feature.melspectrogram(y=x, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
    return librosa.feature.mfcc(S=0.5 * np.log(mel + eps), n_mfcc=n_mfcc)


def mel_cepstral_distance(x: np.ndarray, y: np.ndarray, sr: int, n_mfcc: int, n_mels: int, n_fft: int, hop_length: int,
                          eps: float) -> float:
    """MCD in dB between two equal-length mono signals (c_0 excluded)."""
    cx = mel_cepstra(x, sr, n_mfcc, n_mels, n_fft, hop_length, eps)[1:]
    cy = mel_cepstra(y, sr, n_mfcc, n_mels, n_fft, hop_length, eps)[1:]
    return float(np.mean(10.0 / math.log(10.0) * np.sqrt(2.0 * np.sum((cx - cy) ** 2, axis=0))))


def mrstft_distance(x: np.ndarray, y: np.ndarray, fft_sizes, hop_sizes, win_lengths) -> float:
    from aaexp.tnca.losses import MultiResolutionSTFTLoss

    loss = MultiResolutionSTFTLoss(fft_sizes, hop_sizes, win_lengths)
    with torch.no_grad():
        return float(loss(torch.from_numpy(x).float()[None], torch.from_numpy(y).float()[None]))


def compare(audio: np.ndarray, sr: int, reference: np.ndarray, ref_sr: int, cfg: Mapping[str, Any]) -> dict[str, float]:
    """Distances of `audio` from `reference` (see the module docstring). Both ndarray[T] or [C x T]."""
    import librosa

    c = cfg["compare"]
    rate = int(c["sample_rate"] or sr)
    x, y = mono(audio), mono(reference)
    if sr != rate:
        x = librosa.resample(x, orig_sr=sr, target_sr=rate)
    if ref_sr != rate:
        y = librosa.resample(y, orig_sr=ref_sr, target_sr=rate)
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    lsd, mcd, mr = c["lsd"], c["mcd"], c["mrstft"]
    return {
        "compare_rate": float(rate),
        "compared_s": n / rate,
        "lsd_db": log_spectral_distance(x, y, lsd["n_fft"], lsd["hop_length"], lsd["eps"]),
        "mrstft": mrstft_distance(x, y, mr["fft_sizes"], mr["hop_sizes"], mr["win_lengths"]),
        "mcd_db": mel_cepstral_distance(x, y, rate, mcd["n_mfcc"], mcd["n_mels"], mcd["n_fft"], mcd["hop_length"], mcd["eps"]),
    }


def measure(audio: np.ndarray, sr: int, reference: np.ndarray | None, ref_sr: int | None, cfg: Mapping[str, Any]) -> dict[str, float]:
    """All measures as one flat dict: audio/<m>, reference/<m>, and the pairwise distances."""
    out = {f"audio/{k}": v for k, v in describe(audio, sr, cfg).items()}
    if reference is not None:
        out.update({f"reference/{k}": v for k, v in describe(reference, ref_sr, cfg).items()})
        out.update(compare(audio, sr, reference, ref_sr, cfg))
    return out


def edge_energy(generated: torch.Tensor, target: torch.Tensor, frames: int) -> dict[str, float]:
    """Edge-artifact metric from energies (linear power) Tensor[M x N] of a grown and a target spectrogram.

    edge_db: 10·log10 of the generated energy in the first and last `frames` frames over the
    target's energy there (0 dB: as loud as the target at its edges; positive: too loud).
    edge_vs_interior_db: the same ratio after normalising each spectrogram by its interior energy,
    so a global level error does not count as an edge artifact.
    """
    g, t = generated.double(), target.double()
    k = frames

    def parts(x):
        edge = torch.cat([x[..., :k], x[..., -k:]], dim=-1).mean()
        return float(x[..., :k].mean()), float(x[..., -k:].mean()), float(edge), float(x[..., k:-k].mean())

    gl, gr, ge, gi = parts(g)
    tl, tr, te, ti = parts(t)
    tiny = 1e-20
    db = lambda a, b: 10.0 * math.log10((a + tiny) / (b + tiny))  # noqa: E731
    return {
        "edge_db": db(ge, te),
        "edge_left_db": db(gl, tl),
        "edge_right_db": db(gr, tr),
        "edge_vs_interior_db": db(ge / (gi + tiny), te / (ti + tiny)),
    }


UNDEFINED_WHY = {"centroid_hz": "silent audio, no spectral energy to take a centroid of"}


def undefined_reasons(rows: Mapping[str, float]) -> dict[str, str]:
    """{measure: why} for the measures that are NaN because they do not exist for this audio."""
    return {k: UNDEFINED_WHY[k.rsplit("/", 1)[-1]] for k, v in rows.items()
            if k.rsplit("/", 1)[-1] in UNDEFINED_WHY and not math.isfinite(v)}


def table(rows: Mapping[str, float]) -> str:
    """A two-column Markdown table of measures (n/a and the reason where a measure is undefined)."""
    why = undefined_reasons(rows)
    return tables.markdown(["measure", "value"],
                           [(k, f"n/a (undefined: {why[k]})" if k in why else f"{v:.6g}") for k, v in rows.items()])
