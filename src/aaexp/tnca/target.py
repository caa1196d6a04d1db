"""The training target: the violin, analysed with the vocoder's contract for every output."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from aaexp.core.errors import AaexpError
from aaexp.tnca import contract as ct
from aaexp.tnca.audio_io import load_audio, pad_to_frame_multiple, resolve_path
from aaexp.tnca.contract import VocoderContract
from aaexp.tnca.nca import OutputSpec


@dataclass
class Target:
    """Everything the study compares against.

    audio: Tensor[1 x T] at the contract's rate, padded as configured (what the NCA learns).
    spectrograms: {output name: compressed Tensor[1 x n_bins x N]}.
    refs: {output name: dB reference (the target's max) for db_ref_max contracts; 1.0 otherwise}.
    source / source_sr: the file as stored (ndarray[C x T]), the reference for audio measures.
    """

    path: Path
    audio: torch.Tensor
    spectrograms: dict[str, torch.Tensor]
    refs: dict[str, float]
    source: np.ndarray
    source_sr: int

    @property
    def frames(self) -> int:
        return next(iter(self.spectrograms.values())).shape[-1]


def spectrogram_for(audio: torch.Tensor, spec: OutputSpec, c: VocoderContract) -> tuple[torch.Tensor, float]:
    """(compressed spectrogram Tensor[1 x n_bins x N], linear-domain ref) of one output kind."""
    raw = ct.mel_spectrogram(audio, c, spec.n_bins) if spec.kind == "mel" else ct.linear_spectrogram(audio, c)
    if spec.kind == "linear" and spec.n_bins != c.n_freqs:
        raise AaexpError(f"model.outputs.{spec.name}: a linear output has n_fft/2+1 = {c.n_freqs} bins, not {spec.n_bins}")
    ref = float(raw.max()) if c.compression == "db_ref_max" else 1.0
    return ct.compress(raw, c, ref), ref


def load_target(data_cfg: Mapping[str, Any], c: VocoderContract, specs: list[OutputSpec], device=None) -> Target:
    """Read `data.path`, mix to mono, resample to the contract's rate, crop/pad, analyse every output."""
    path = resolve_path(data_cfg["path"], "data.path")
    source, source_sr = load_audio(path, None, mono=False)
    audio, _ = load_audio(path, c.sample_rate, mono=True)
    if data_cfg.get("max_seconds"):
        audio = audio[: int(round(float(data_cfg["max_seconds"]) * c.sample_rate))]
        source = source[:, : int(round(float(data_cfg["max_seconds"]) * source_sr))]
    audio = pad_to_frame_multiple(audio, c.hop_length, data_cfg.get("pad_frames_multiple"))
    if len(audio) < c.n_fft:
        raise AaexpError(f"data.path={data_cfg['path']}: {len(audio)} samples is shorter than one frame ({c.n_fft})")
    x = torch.from_numpy(audio).float()[None].to(device)
    specs_out, refs = {}, {}
    for s in specs:
        specs_out[s.name], refs[s.name] = spectrogram_for(x, s, c)
    return Target(path, x, specs_out, refs, source, source_sr)
