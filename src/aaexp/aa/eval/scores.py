"""Per-tone NMR-S and HESR-R, their split by band (`group_by=region`), and the per-band aggregate.

- NMR-S(model) = NMR(signal=y, reference=BL(y)): the aliasing left in the model's own output,
  weighed against the masking threshold of its harmonics. dB, lower is better.
- HESR-R(model) = ESR of BL(y_model) against BL(y_teacher) = sum of |Y_model - Y_teacher|^2 over
  the harmonic bins (DC included) / the same sum of |Y_teacher|^2 (Parseval). dB, lower is better.
- Region split of one tone: NMR-S in band b keeps only the alias components lying in b (the
  masker is still the whole harmonic series), so it reads as band b's share of the tone's NMR;
  HESR-R in band b is the ESR over the harmonic bins lying in b.
- A band's value is the power mean over its tones: 10·log10(mean of 10^(dB/10)), so the worst
  tones dominate (a cautious summary for an audibility threshold) and floor values weigh nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from aaexp.aa.signal.bandlimit import harmonic_mask, harmonic_part


def to_db(power_ratio: torch.Tensor, floor_db: float) -> torch.Tensor:
    """10·log10 clamped below at floor_db; NaN stays NaN (undefined, e.g. a silent teacher)."""
    out = 10.0 * torch.log10(power_ratio)
    return torch.where(torch.isnan(out), out, out.clamp_min(floor_db))


def rfft_weights(n: int, device=None, dtype=torch.float64) -> torch.Tensor:
    """Tensor[n//2+1]: how often each rfft bin counts in sum(y^2) (DC and Nyquist once, others twice)."""
    w = torch.full((n // 2 + 1,), 2.0, dtype=dtype, device=device)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    return w


@dataclass
class ToneScores:
    """One model's per-tone scores in dB: `nmr_s`, `hesr_r` Tensor[B]; region splits Tensor[nb x B] or None."""

    nmr_s: torch.Tensor
    hesr_r: torch.Tensor
    nmr_s_region: torch.Tensor | None = None
    hesr_r_region: torch.Tensor | None = None


def nmr_s(nmr: torch.nn.Module, y: torch.Tensor, spec: torch.Tensor, m: torch.Tensor, floor_db: float) -> torch.Tensor:
    """Tensor[B] dB: NMR of y against its own bandlimited version.

    y: Tensor[B x N], spec: its rfft Tensor[B x (N//2+1)], m: LongTensor[B].
    """
    return nmr(y, harmonic_part(spec, m, y.shape[-1])).to(torch.float64).clamp_min(floor_db)


def nmr_s_by_region(nmr: torch.nn.Module, spec: torch.Tensor, m: torch.Tensor, n: int, bin_masks: torch.Tensor,
                    floor_db: float) -> torch.Tensor:
    """Tensor[nb x B] dB: NMR-S counting only the alias components that lie in each band.

    Signal BL(y) + (aliases of y inside band b), reference BL(y). spec: rfft of y, Tensor[B x K].
    """
    ref = harmonic_part(spec, m, n)
    alias = torch.where(harmonic_mask(m, n).to(spec.device), 0, spec)                                    # B x K
    parts = torch.fft.irfft(alias.unsqueeze(0) * bin_masks.unsqueeze(1).to(spec.device), n=n)   # nb x B x N
    nb, b = parts.shape[:2]
    sig = (ref.unsqueeze(0) + parts).reshape(nb * b, n)
    vals = nmr(sig, ref.unsqueeze(0).expand(nb, b, n).reshape(nb * b, n))
    return vals.reshape(nb, b).to(torch.float64).clamp_min(floor_db)


def hesr_r(spec: torch.Tensor, spec_teacher: torch.Tensor, m: torch.Tensor, n: int, floor_db: float,
           bin_masks: torch.Tensor | None = None, min_energy_db: float = -120.0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(Tensor[B], Tensor[nb x B] or None) dB: ESR of BL(y) against BL(y_teacher), overall and per band.

    spec, spec_teacher: rfft of the windows, Tensor[B x (N//2+1)]; by Parseval the time-domain
    ESR of the bandlimited signals is a weighted sum over the harmonic bins. A band scores a tone
    only where the teacher's harmonic energy there exceeds min_energy_db relative to the tone's
    whole harmonic energy (NaN otherwise: nothing to compare).
    """
    w = rfft_weights(n, spec.device, spec.real.dtype) * harmonic_mask(m, n).to(spec.device)   # B x K
    err = w * (spec - spec_teacher).abs().pow(2)
    ref = w * spec_teacher.abs().pow(2)
    err_all, ref_all = err.sum(-1), ref.sum(-1)
    total = to_db(err_all / ref_all, floor_db).to(torch.float64)
    if bin_masks is None:
        return total, None
    bm = bin_masks.to(spec.device, w.dtype).unsqueeze(1)               # nb x 1 x K
    err_b, ref_b = (err.unsqueeze(0) * bm).sum(-1), (ref.unsqueeze(0) * bm).sum(-1)
    present = ref_b > ref_all * 10.0 ** (min_energy_db / 10.0)
    region = to_db(err_b / ref_b, floor_db).to(torch.float64)
    return total, torch.where(present, region, torch.nan)


def power_mean_db(values_db: torch.Tensor, include: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-group (power mean dB, max dB, count) over included, non-NaN tones; NaN where a group is empty.

    values_db: Tensor[B] or Tensor[G x B]; include: BoolTensor[G x B]. Returns three Tensor[G].
    """
    v = values_db.to(torch.float64).cpu().expand(include.shape)
    use = include.cpu() & ~torch.isnan(v)
    count = use.sum(-1)
    lin = torch.where(use, 10.0 ** (v / 10.0), 0.0).sum(-1) / count.clamp_min(1)
    mean = torch.where(count > 0, 10.0 * torch.log10(lin), torch.nan)
    vmax = torch.where(use, v, -torch.inf).amax(-1)
    return mean, torch.where(count > 0, vmax, torch.nan), count
