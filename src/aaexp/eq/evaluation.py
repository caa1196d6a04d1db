"""Measure a trained EQ autoencoder: the eval/* metrics, the decoded-settings tables, plot inputs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from aaexp.core import tables
from aaexp.core.errors import AaexpError
from aaexp.eq import metrics
from aaexp.eq.data import EqData
from aaexp.eq.model_file import TrainedEq
from aaexp.eq.params import FREQ_IDX, NAMES, describe_invalid


@dataclass
class Decoded:
    """One decoded setting with its checks."""

    name: str
    params: np.ndarray  # Array[13] (dB, Hz, Q)
    valid: bool
    tilt_db: float      # mean response in low_mid_hz minus that in high_hz
    note: str = ""


@dataclass
class Evaluation:
    metrics: dict[str, float]
    latent: np.ndarray                  # Array[N x D], every row of the data
    split: np.ndarray                   # "train" | "val" per row
    descriptors: list[Decoded]          # each descriptor's centroid, decoded
    interpolation: list[Decoded]        # along the line between the two `interpolate` centroids
    interp_path: np.ndarray             # Array[len(alphas) x D]
    centroids: dict[str, np.ndarray] = field(default_factory=dict)  # descriptor -> Array[D]
    undefined: dict[str, str] = field(default_factory=dict)  # metric -> why it is NaN


def _tilt(params: np.ndarray, ev_cfg, fs: float, shelf_q: float) -> float:
    return metrics.band_tilt_db(params, tuple(ev_cfg.semantic.low_mid_hz), tuple(ev_cfg.semantic.high_hz), fs, shelf_q)


def decode_setting(name: str, params: np.ndarray, trained: TrainedEq, ev_cfg) -> Decoded:
    """One physical setting with its validity, out-of-range note and low-mid minus high tilt."""
    fs, sq = float(ev_cfg.response.sample_rate), trained.ranges.shelf_q
    valid = bool(trained.ranges.valid(params[None])[0])
    return Decoded(name, params, valid, _tilt(params, ev_cfg, fs, sq), "" if valid else describe_invalid(params, trained.ranges))


def evaluate(trained: TrainedEq, data: EqData, train_idx: np.ndarray, val_idx: np.ndarray, ev_cfg) -> Evaluation:
    """Every eval/* metric of the issue, on the training and held-out rows."""
    latent = trained.encode(data.params)
    split = np.full(len(data.labels), "train", dtype=object)
    split[val_idx] = "val"
    m: dict[str, float] = {}
    labels = np.asarray(data.labels)
    focus = np.isin(labels, list(ev_cfg.descriptors))
    # Reference: how the descriptors cluster in the normalised inputs the encoder sees.
    x_norm = trained.normaliser.forward(torch.as_tensor(data.params)).numpy()
    undefined: dict[str, str] = {}

    def cluster(points, labs, suffix):
        why = metrics.clustering_undefined(list(labs))
        for k, v in metrics.clustering(points, list(labs)).items():
            m[f"eval/{k}{suffix}"] = v
            if why:
                undefined[f"eval/{k}{suffix}"] = why

    cluster(x_norm, labels, "/input")
    cluster(x_norm[focus], labels[focus], "_focus/input")
    for name, idx in (("train", train_idx), ("val", val_idx), ("all", np.arange(len(labels)))):
        if len(idx) == 0:
            continue
        cluster(latent[idx], labels[idx], f"/{name}")
        sel = idx[focus[idx]]  # the same, restricted to the tabulated descriptors (warm, bright)
        cluster(latent[sel], labels[sel], f"_focus/{name}")
        if name == "all":
            continue
        target = data.params[idx]
        with torch.no_grad():
            dev = next(trained.model.parameters()).device
            y = trained.model.decoder(torch.as_tensor(latent[idx], dtype=torch.float32, device=dev)).double().cpu()
        m[f"eval/recon_norm/{name}"] = float(torch.mean((y - trained.normaliser.forward(torch.as_tensor(target))) ** 2))
        decoded = trained.normaliser.inverse(y).numpy()
        for k, v in metrics.physical_errors(decoded, target).items():
            m[f"eval/{k}/{name}"] = v
        m[f"eval/valid_share/{name}"] = float(trained.ranges.valid(decoded).mean())

    # Every descriptor decoded from the centroid of its training rows' latent codes.
    cents = metrics.centroids(latent[train_idx], list(labels[train_idx]), data.descriptors)
    words = list(ev_cfg.descriptors) + [w for w in data.descriptors if w not in ev_cfg.descriptors]
    words = [w for w in words if w in cents]
    settings = trained.decode(np.stack([cents[w] for w in words]))
    desc = [decode_setting(w, p, trained, ev_cfg) for w, p in zip(words, settings)]
    m["eval/valid_share/centroids"] = float(np.mean([d.valid for d in desc]))
    freqs = settings[:, FREQ_IDX]
    m["eval/decoded_freq_hz/min"], m["eval/decoded_freq_hz/max"] = float(freqs.min()), float(freqs.max())

    semantic_ok = []
    for word, region in ev_cfg.semantic.expect.items():
        d = next((d for d in desc if d.name == word), None)
        if d is None:
            continue
        sign = {"low_mid": 1.0, "high": -1.0}.get(str(region))
        if sign is None:
            raise AaexpError(f"eval.semantic.expect.{word}={region!r} is not one of low_mid, high")
        m[f"eval/semantic/{word}_tilt_db"] = sign * d.tilt_db  # > 0: the expected region is louder
        semantic_ok.append(sign * d.tilt_db > 0)
    if semantic_ok:
        m["eval/semantic/pass_share"] = float(np.mean(semantic_ok))

    a, b = (str(w) for w in ev_cfg.interpolate)
    interp, path = [], np.empty((0, latent.shape[1]))
    if a in cents and b in cents:
        interp, path = morph(trained, cents, a, b, ev_cfg.alphas, ev_cfg)
        for alpha, d in zip(ev_cfg.alphas, interp):
            m[f"eval/interp_valid/a{float(alpha):.2f}"] = float(d.valid)
            m[f"eval/interp_tilt_db/a{float(alpha):.2f}"] = d.tilt_db
        m["eval/valid_share/interp"] = float(np.mean([d.valid for d in interp]))
    return Evaluation(m, latent, split, desc, interp, path, cents, undefined)


def morph(trained: TrainedEq, cents: dict[str, np.ndarray], a: str, b: str, alphas, ev_cfg) -> tuple[list[Decoded], np.ndarray]:
    """Decoded settings along the straight latent line from centroid `a` to centroid `b`.
    Returns (one Decoded per alpha, the latent path Array[len(alphas) x D])."""
    path = metrics.interpolate(cents[a], cents[b], alphas)
    rows = [decode_setting(f"{a}->{b} a={float(alpha):.2f}", p, trained, ev_cfg) for alpha, p in zip(alphas, trained.decode(path))]
    return rows, path


def table_markdown(rows: list[Decoded], counts: dict[str, int] | None = None) -> str:
    """Decoded settings as a Markdown table: one row per setting, bands as columns."""
    head = ["setting", *(["rows"] if counts else []), "valid", "low-mid minus high (dB)",
            "B1 low shelf", "B2 peak", "B3 peak", "B4 peak", "B5 high shelf"]
    out = []
    for d in rows:
        p = d.params
        bands = [f"{p[0]:+.1f} dB @ {p[1]:.0f} Hz",
                 *[f"{p[g]:+.1f} dB @ {p[f]:.0f} Hz, Q {p[q]:.2f}" for g, f, q in ((2, 3, 4), (5, 6, 7), (8, 9, 10))],
                 f"{p[11]:+.1f} dB @ {p[12]:.0f} Hz"]
        cells = [d.name, *([str(counts.get(d.name, ""))] if counts else []), "yes" if d.valid else "NO", f"{d.tilt_db:+.2f}", *bands]
        out.append(cells)
    return tables.markdown(head, out)


def as_dict(rows: list[Decoded]) -> list[dict]:
    return [{"name": d.name, "valid": d.valid, "tilt_db": d.tilt_db, "out_of_range": d.note,
             **{n: float(v) for n, v in zip(NAMES, d.params)}} for d in rows]
