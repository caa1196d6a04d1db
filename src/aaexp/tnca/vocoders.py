"""Vocoders: compressed spectrogram -> audio. Each declares the contract its input must follow.

Griffin-Lim needs no weights and is the offline default. BigVGAN loads from a local checkpoint
directory only (config.json + bigvgan_generator.pt); nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from aaexp.core.errors import AaexpError
from aaexp.tnca import contract as ct
from aaexp.tnca.contract import VocoderContract


def griffin_lim(magnitude: torch.Tensor, c: VocoderContract, n_iter: int = 64, momentum: float = 0.99,
                seed: int = 0, length: int | None = None, detach_phase: bool = False) -> torch.Tensor:
    """Fast Griffin-Lim (Perraudin et al. 2013, librosa's momentum scheme) in torch.

    magnitude: Tensor[B x F x N] of |X| (not power). Returns Tensor[B x T]. Differentiable with
    respect to `magnitude`; with `detach_phase` only through the last synthesis (phase held fixed).
    """
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    phase = torch.rand(magnitude.shape, generator=gen, dtype=magnitude.dtype).to(magnitude.device) * 2 * torch.pi
    angles = torch.polar(torch.ones_like(magnitude), phase)
    mag_for_phase = magnitude.detach() if detach_phase else magnitude
    rebuilt = torch.zeros_like(angles)
    for _ in range(n_iter):
        prev = rebuilt
        rebuilt = ct.stft(ct.istft(mag_for_phase * angles, c, length), c)
        angles = rebuilt - (momentum / (1 + momentum)) * prev
        angles = angles / (angles.abs() + 1e-16)
    if detach_phase:
        angles = angles.detach()
    return ct.istft(magnitude * angles, c, length)


class GriffinLimVocoder(nn.Module):
    """Griffin-Lim from the compressed mel (via non-negative least squares) or the linear spectrum.

    Args:
        contract: the spectrogram's contract.
        n_iter, momentum, seed: Griffin-Lim settings; mel_inverse_iters: NNLS iterations.
    """

    def __init__(self, contract: VocoderContract, n_iter: int = 64, momentum: float = 0.99, seed: int = 0,
                 mel_inverse_iters: int = 100):
        super().__init__()
        self.contract, self.n_iter, self.momentum, self.seed = contract, n_iter, momentum, seed
        self.mel_inverse_iters = mel_inverse_iters

    def linear_to_audio(self, spec: torch.Tensor, ref=1.0, n_iter: int | None = None, detach_phase: bool = False) -> torch.Tensor:
        """Compressed linear spectrum Tensor[B x F x N] -> Tensor[B x T]."""
        c = self.contract
        mag = ct.power_to_magnitude(ct.decompress(spec, c, ref), c)
        return griffin_lim(mag, c, n_iter or self.n_iter, self.momentum, self.seed, c.num_samples(spec.shape[-1]), detach_phase)

    def mel_to_audio(self, mel: torch.Tensor, ref=1.0, n_iter: int | None = None, detach_phase: bool = False) -> torch.Tensor:
        """Compressed mel Tensor[B x M x N] -> Tensor[B x T]."""
        c = self.contract
        lin = ct.mel_to_linear(ct.decompress(mel, c, ref), c, self.mel_inverse_iters)
        mag = ct.power_to_magnitude(lin, c)
        return griffin_lim(mag, c, n_iter or self.n_iter, self.momentum, self.seed, c.num_samples(mel.shape[-1]), detach_phase)


BIGVGAN_KEYS = {  # config.json key -> contract field
    "sampling_rate": "sample_rate", "n_fft": "n_fft", "hop_size": "hop_length", "win_size": "win_length",
    "num_mels": "n_mels", "fmin": "fmin", "fmax": "fmax",
}


def check_bigvgan_contract(h: Mapping[str, Any], c: VocoderContract) -> None:
    """A checkpoint whose config.json disagrees with the declared contract is refused, field by field."""
    if c.compression != "ln_clamp" or c.center or c.mel_norm != "slaney" or c.power != 1.0:
        raise AaexpError(f"contract '{c.name}' is not a BigVGAN contract (needs ln_clamp, center=false, slaney, power 1)")
    bad = [f"{k}={h.get(k)!r} vs {f}={getattr(c, f)!r}" for k, f in BIGVGAN_KEYS.items()
           if k in h and (h[k] != getattr(c, f) and not (h[k] is None and getattr(c, f) is None))]
    if bad:
        raise AaexpError(f"BigVGAN checkpoint does not match contract '{c.name}': " + "; ".join(bad))


class BigVGANVocoder(nn.Module):
    """NVIDIA BigVGAN generator (the `bigvgan` package), frozen; input = the contract's ln-mel.

    Build with `from_checkpoint(dir, contract)` (a local directory) or wrap an existing generator.
    """

    def __init__(self, generator: nn.Module, contract: VocoderContract):
        super().__init__()
        check_bigvgan_contract(dict(generator.h), contract)
        self.generator = generator.eval().requires_grad_(False)
        self.contract = contract

    @classmethod
    def from_checkpoint(cls, directory: str | Path | None, contract: VocoderContract, device=None) -> "BigVGANVocoder":
        import bigvgan

        need = "config.json and bigvgan_generator.pt of a BigVGAN checkpoint (e.g. nvidia/bigvgan_v2_22khz_80band_256x)"
        if not directory:
            raise AaexpError(f"model.vocoder.checkpoint_dir is not set; give a local directory holding {need}")
        d = Path(str(directory)).expanduser()
        if not (d / "config.json").is_file() or not (d / "bigvgan_generator.pt").is_file():
            raise AaexpError(f"model.vocoder.checkpoint_dir={directory}: put {need} there (nothing is downloaded)")
        h = bigvgan.env.AttrDict(json.loads((d / "config.json").read_text()))
        check_bigvgan_contract(h, contract)
        gen = bigvgan.BigVGAN(h, use_cuda_kernel=False)
        state = torch.load(d / "bigvgan_generator.pt", map_location="cpu", weights_only=True)
        try:
            gen.load_state_dict(state["generator"])
        except RuntimeError:  # checkpoints saved after weight-norm removal
            gen.remove_weight_norm()
            gen.load_state_dict(state["generator"])
        return cls(gen.to(device), contract)

    def mel_to_audio(self, mel: torch.Tensor, ref=1.0, n_iter=None, detach_phase=False) -> torch.Tensor:
        """ln-mel Tensor[B x M x N] -> Tensor[B x N·hop] (gradients flow to `mel`, not the weights)."""
        return self.generator(mel).squeeze(1)


def build_vocoder(vcfg: Mapping[str, Any], contract: VocoderContract, seed: int, device=None) -> nn.Module:
    """`model.vocoder.name`: griffin_lim | bigvgan."""
    name = vcfg["name"]
    if name == "griffin_lim":
        return GriffinLimVocoder(contract, vcfg["griffin_lim_iters"], vcfg["momentum"], seed, vcfg["mel_inverse_iters"])
    if name == "bigvgan":
        return BigVGANVocoder.from_checkpoint(vcfg.get("checkpoint_dir"), contract, device)
    raise AaexpError(f"model.vocoder.name={name!r} is not one of griffin_lim, bigvgan")
