"""Vocoder input contracts: the exact spectrogram a vocoder was trained on, computed one way.

A contract fixes sample rate, STFT framing, mel filterbank and compression. The target the NCA
learns is computed with the vocoder's contract, so the grown spectrogram is already in the
vocoder's own domain; inverting a contract (decompress, mel -> linear, Griffin-Lim) mirrors it.

Framing: `center=True` pads n_fft//2 on each side (librosa's convention, used by the original
notebook); `center=False` pads (n_fft - hop)//2 (BigVGAN / HiFi-GAN `meldataset.py`). Both then
take frames with no further padding, so frame t starts at sample t·hop - pad.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from aaexp.core.errors import AaexpError

COMPRESSIONS = ("ln_clamp", "db_ref_max")


@dataclass(frozen=True)
class VocoderContract:
    """What a vocoder expects as input; see conf/model/tnca_nca.yaml `contracts` for the presets.

    Args:
        name: preset name (for logs).
        sample_rate, n_fft, hop_length, win_length: STFT (periodic Hann window).
        n_mels, fmin, fmax: librosa mel filterbank (fmax None: Nyquist).
        mel_norm: "slaney" or None (librosa `norm`); htk: HTK mel scale instead of Slaney's.
        center: framing convention (see module docstring); pad_mode: "reflect" or "constant".
        power: 1.0 = STFT magnitude, 2.0 = power, before the mel matrix.
        mag_eps: added to re² + im² inside the square root (BigVGAN: 1e-9).
        compression: "ln_clamp" = ln(max(x, clip)); "db_ref_max" = librosa power_to_db with
            ref = the spectrogram's max (amplitude_to_db when power is 1), floored at top_db.
        clip: ln_clamp floor; amin for dB.
        top_db: dB floor below the max (None: no floor).
        floor, ceiling: the range the NCA's tanh output is mapped onto, in compressed units.
    """

    name: str
    sample_rate: int
    n_fft: int
    hop_length: int
    win_length: int
    n_mels: int
    fmin: float
    fmax: float | None
    mel_norm: str | None
    htk: bool
    center: bool
    pad_mode: str
    power: float
    mag_eps: float
    compression: str
    clip: float
    top_db: float | None
    floor: float
    ceiling: float

    @classmethod
    def from_config(cls, name: str, cfg: Mapping[str, Any]) -> "VocoderContract":
        """Build from a config mapping; unknown or missing keys are an error, not silently dropped."""
        known = {f.name for f in fields(cls)} - {"name"}
        given = set(cfg)
        if given - known or known - given:
            raise AaexpError(
                f"contract '{name}': unknown keys {sorted(given - known)}, missing keys {sorted(known - given)}"
            )
        c = cls(name=name, **{k: cfg[k] for k in known})
        if c.compression not in COMPRESSIONS:
            raise AaexpError(f"contract '{name}': compression={c.compression!r} is not one of {COMPRESSIONS}")
        if c.pad_mode not in ("reflect", "constant"):
            raise AaexpError(f"contract '{name}': pad_mode={c.pad_mode!r} is not reflect or constant")
        return c

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def pad(self) -> int:
        """Samples padded on each side before framing."""
        return self.n_fft // 2 if self.center else (self.n_fft - self.hop_length) // 2

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    def num_frames(self, num_samples: int) -> int:
        return 1 + (num_samples + 2 * self.pad - self.n_fft) // self.hop_length

    def num_samples(self, num_frames: int) -> int:
        """Length of the signal a vocoder returns for `num_frames` frames (inverse of num_frames)."""
        return (num_frames - 1) * self.hop_length + self.n_fft - 2 * self.pad

    def with_mels(self, n_mels: int) -> "VocoderContract":
        """The same contract with another number of mel bins (multi-scale targets)."""
        return VocoderContract(**{**asdict(self), "n_mels": n_mels})


def contract_from_config(model_cfg: Mapping[str, Any], name: str | None = None) -> VocoderContract:
    """The contract named by `model.vocoder.contract` (or `name`) from `model.contracts`."""
    name = name or model_cfg["vocoder"]["contract"]
    presets = model_cfg["contracts"]
    if name not in presets:
        raise AaexpError(f"unknown vocoder contract '{name}'; available: {', '.join(sorted(presets))}")
    return VocoderContract.from_config(name, dict(presets[name]))


# -- analysis ------------------------------------------------------------------------------------
@lru_cache(maxsize=32)
def _mel_basis_np(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None, htk: bool, norm) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)


def mel_basis(c: VocoderContract, device=None, n_mels: int | None = None, dtype=torch.float32) -> torch.Tensor:
    """librosa's mel filterbank for this contract: Tensor[M x F]."""
    m = _mel_basis_np(c.sample_rate, c.n_fft, n_mels or c.n_mels, c.fmin, c.fmax, c.htk, c.mel_norm)
    return torch.from_numpy(m).to(device=device, dtype=dtype)


def _window(c: VocoderContract, device, dtype=torch.float32) -> torch.Tensor:
    return torch.hann_window(c.win_length, device=device, dtype=dtype)


def stft(audio: torch.Tensor, c: VocoderContract) -> torch.Tensor:
    """Complex STFT with the contract's framing: Tensor[B x T] -> complex Tensor[B x F x N]."""
    x = F.pad(audio.unsqueeze(1), (c.pad, c.pad), mode=c.pad_mode).squeeze(1)
    return torch.stft(x, c.n_fft, c.hop_length, c.win_length, _window(c, audio.device, audio.dtype),
                      center=False, normalized=False, onesided=True, return_complex=True)


def istft(spec: torch.Tensor, c: VocoderContract, length: int | None = None) -> torch.Tensor:
    """Least-squares inverse of `stft` by weighted overlap-add: complex Tensor[B x F x N] -> Tensor[B x T].

    torch.istft with center=False rejects Hann windows (zero envelope at the ends of the padded
    signal); here the padding is trimmed, and inside it the envelope is never near zero.
    """
    n = spec.shape[-1]
    win = _window(c, spec.device, spec.real.dtype)
    frames = torch.fft.irfft(spec, n=c.n_fft, dim=-2)  # B x n_fft x N
    if c.win_length < c.n_fft:  # torch.stft centres a short window inside n_fft
        left = (c.n_fft - c.win_length) // 2
        win = F.pad(win, (left, c.n_fft - c.win_length - left))
    total = (n - 1) * c.hop_length + c.n_fft
    y = F.fold((frames * win[:, None]), (1, total), (1, c.n_fft), stride=(1, c.hop_length)).flatten(1)
    env = F.fold((win**2)[None, :, None].expand(1, -1, n), (1, total), (1, c.n_fft), stride=(1, c.hop_length)).flatten(1)
    y = y / env.clamp_min(1e-8)
    out = y[:, c.pad : total - c.pad]
    if length is not None:
        out = out[:, :length] if out.shape[-1] >= length else F.pad(out, (0, length - out.shape[-1]))
    return out


def magnitude(spec: torch.Tensor, c: VocoderContract) -> torch.Tensor:
    """|X|^power as the contract defines it (BigVGAN: sqrt(re² + im² + 1e-9))."""
    mag2 = spec.real**2 + spec.imag**2 + c.mag_eps
    return mag2 if c.power == 2.0 else mag2 ** (c.power / 2.0)


def compress(x: torch.Tensor, c: VocoderContract, ref: torch.Tensor | float | None = None) -> torch.Tensor:
    """Linear mel (or linear spectrogram) -> the contract's domain. Tensor[B x M x N] -> same shape.

    For "db_ref_max", `ref` defaults to each item's max (librosa ref=np.max); pass the target's ref
    to put a generated spectrogram on the same scale.
    """
    if c.compression == "ln_clamp":
        return torch.log(torch.clamp(x, min=c.clip))
    factor = 20.0 / c.power  # power_to_db for power, amplitude_to_db for magnitude
    if ref is None:
        ref = x.detach().flatten(1).amax(1).view(-1, *([1] * (x.dim() - 1)))
    ref_t = torch.as_tensor(ref, dtype=x.dtype, device=x.device)
    db = factor * torch.log10(torch.clamp(x, min=c.clip)) - factor * torch.log10(torch.clamp(ref_t, min=c.clip))
    if c.top_db is not None:
        top = db.detach().flatten(1).amax(1).view(-1, *([1] * (x.dim() - 1)))
        db = torch.maximum(db, top - c.top_db)
    return db


def decompress(y: torch.Tensor, c: VocoderContract, ref: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Inverse of `compress` (above its floor): compressed -> linear mel magnitude or power."""
    if c.compression == "ln_clamp":
        return torch.exp(y)
    return torch.as_tensor(ref, dtype=y.dtype, device=y.device) * torch.pow(10.0, y / (20.0 / c.power))


def linear_spectrogram(audio: torch.Tensor, c: VocoderContract) -> torch.Tensor:
    """|STFT|^power with the contract's framing: Tensor[B x T] -> Tensor[B x F x N] (uncompressed)."""
    return magnitude(stft(audio, c), c)


def mel_spectrogram(audio: torch.Tensor, c: VocoderContract, n_mels: int | None = None) -> torch.Tensor:
    """Uncompressed mel: Tensor[B x T] -> Tensor[B x M x N]."""
    return mel_basis(c, audio.device, n_mels, audio.dtype) @ linear_spectrogram(audio, c)


def analyse(audio: torch.Tensor, c: VocoderContract, n_mels: int | None = None, ref=None) -> torch.Tensor:
    """The vocoder's input for this audio: compressed mel, Tensor[B x T] -> Tensor[B x M x N]."""
    return compress(mel_spectrogram(audio, c, n_mels), c, ref)


def mel_to_linear(mel: torch.Tensor, c: VocoderContract, iters: int = 100) -> torch.Tensor:
    """Non-negative least-squares linear spectrum under a mel: Tensor[B x M x N] -> Tensor[B x F x N].

    Multiplicative updates (Lee & Seung) for min ||M S - mel||² with S >= 0, started from
    Mᵀ·mel; differentiable, so an audio-domain loss can flow back through it.
    """
    basis = mel_basis(c, mel.device, mel.shape[-2], mel.dtype)
    num = basis.T @ mel
    s = num.clamp_min(1e-10)
    for _ in range(iters):  # Mᵀ(M s), not (MᵀM) s: 80-row products instead of 513×513
        s = s * num / (basis.T @ (basis @ s)).clamp_min(1e-10)
    return s


def power_to_magnitude(x: torch.Tensor, c: VocoderContract) -> torch.Tensor:
    """|X|^power -> |X|."""
    return x if c.power == 1.0 else x.clamp_min(0) ** (1.0 / c.power)


def nats_to_db(x: float) -> float:
    """A difference of ln magnitudes expressed in dB (20·log10(e) ≈ 8.686 dB per nat)."""
    return 20.0 * x / math.log(10.0)
