"""The anti-aliasing training loss: Σ weights[term]·term after pre-emphasis, weights from λ.

`loss.lam` (λ) trades waveform fidelity against perceived aliasing: esr_normal = 1/(1+λ),
nmr = λ/(1+λ) (dc keeps its own weight). A curriculum moves λ per epoch. Terms, as in the DAFx25
reference: esr_normal (ESR of the raw output), nmr (10^(NMR_dB/10), PEAQ noise-to-mask ratio),
dc, and, needing the whole exactly periodic window, mesr, esr (ESR of the bandlimited output), asr
(aliasing-to-signal) and harmonic (dB error at the first harmonics).
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from aaexp.aa.loss import ratio as losses
from aaexp.aa.loss.harmonic import HarmonicLoss
from aaexp.aa.loss.nmr import NMRLoss
from aaexp.aa.signal.bandlimit import bandlimit
from aaexp.aa.signal.filters import make_prefilter
from aaexp.core.errors import AaexpError

TERMS = ("esr_normal", "nmr", "dc", "mesr", "esr", "asr", "harmonic")
# Terms that read harmonic bins, so they need the full N-sample periodic window in one piece.
WHOLE_WINDOW_TERMS = frozenset({"mesr", "esr", "asr", "harmonic"})
LAMBDA_TERMS = ("esr_normal", "nmr")  # the pair λ sets
FORMS = ("power", "db")  # a term as a power ratio (reference) or in bels (log10), whose gradient does not fade
NMR_FORMS = FORMS + ("pmean",)  # pmean: log10 of the per-tone power mean, the evaluation's band aggregate


def lambda_weights(lam: float) -> dict[str, float]:
    """λ → {esr_normal: 1/(1+λ), nmr: λ/(1+λ)}."""
    if lam < 0 or not math.isfinite(lam):
        raise AaexpError(f"loss.lam={lam}: λ must be a finite number ≥ 0")
    return {"esr_normal": 1.0 / (1.0 + lam), "nmr": lam / (1.0 + lam)}


def lambda_at(loss_cfg: DictConfig, epoch: int, max_epochs: int) -> float | None:
    """The λ in force during epoch `epoch` (0-based): constant, or the exponential curriculum.

    curriculum: λ_e = λ_start·(λ_end/λ_start)^(e/E) with E = max_epochs, so epoch 0 trains at
    λ_start and λ reaches λ_end at e = E (the state after the last epoch).
    """
    schedule = str(loss_cfg.schedule)
    if schedule == "constant":
        return None if loss_cfg.lam is None else float(loss_cfg.lam)
    if schedule == "curriculum":
        start, end = float(loss_cfg.lam_start), float(loss_cfg.lam_end)
        if start <= 0 or end <= 0:
            raise AaexpError("loss.schedule=curriculum needs loss.lam_start and loss.lam_end > 0")
        return start * (end / start) ** (epoch / max(int(max_epochs), 1))
    raise AaexpError(f"loss.schedule={schedule!r} is not one of constant, curriculum")


def term_weights(loss_cfg: DictConfig, lam: float | None) -> dict[str, float]:
    """Every term's weight: esr_normal/nmr from λ, or (λ null) as given in `loss.weights`.

    Giving both λ and an explicit esr_normal/nmr weight is refused rather than silently resolved.
    """
    given = OmegaConf.to_container(loss_cfg.weights, resolve=True)
    unknown = sorted(set(given) - set(TERMS))
    if unknown:
        raise AaexpError(f"loss.weights has unknown term(s) {unknown}; known: {', '.join(TERMS)}")
    explicit = [t for t in LAMBDA_TERMS if given.get(t) is not None]
    if lam is not None and explicit:
        raise AaexpError(f"loss.lam={lam} sets the {'/'.join(LAMBDA_TERMS)} weights, but loss.weights gives "
                         f"{explicit} too: set loss.lam=null to use explicit weights")
    if lam is None and len(explicit) < len(LAMBDA_TERMS):
        raise AaexpError("loss.lam is null: give loss.weights.esr_normal and loss.weights.nmr explicitly")
    weights = {t: float(given.get(t) or 0.0) for t in TERMS}
    if lam is not None:
        weights.update(lambda_weights(lam))
    bad = [t for t, w in weights.items() if w < 0 or not math.isfinite(w)]
    if bad:
        raise AaexpError(f"loss.weights: {bad} must be finite and ≥ 0")
    return weights


class AALoss(nn.Module):
    """Σ weights[t]·t(student, target) over the terms with a nonzero weight, after pre-emphasis.

    Both signals arrive with `history` extra samples in front of the loss frame: the filter runs
    over them and they are dropped, so no filter start-up transient enters the loss (for the
    target, whose window is exactly periodic, the caller extends it circularly).

    Args:
        loss_cfg: the `loss` config node (pre_emphasis, harmonic).
        fs: sample rate in Hz.

    Shape:
        input, target: Tensor[B x (history + L)]; m: LongTensor[B] (bin of f0 in the N-window,
        needed by whole-window terms, for which L must be N).
        output: (total: scalar, terms: dict name -> weighted scalar, detached not).
    """

    def __init__(self, loss_cfg: DictConfig, fs: float):
        super().__init__()
        pe = loss_cfg.pre_emphasis
        kind = str(pe.kind)
        params = OmegaConf.to_container(pe.get(kind) or {}, resolve=True) if kind != "none" else {}
        self.prefilter = make_prefilter(kind, fs, **params)
        self.history = int(self.prefilter.history)  # causal FIR: past input samples it reads
        # Ratios pooled over the batch (Σ num / Σ den), as the reference trains: loud tones weigh more.
        self.esr_normal = losses.ESRNormalLoss(reduction="pooled")
        self.esr = losses.ESRLoss(reduction="pooled")
        self.mesr = losses.MESRLoss(reduction="pooled")
        self.dc = losses.DCLoss(reduction="pooled")
        self.asr = losses.ASRLoss(reduction="pooled")
        self.nmr = NMRLoss(fs, reduction="none")
        h = loss_cfg.harmonic
        self.harmonic = HarmonicLoss(int(h.n_harmonics), float(h.floor_db))
        self.nmr_form = str(loss_cfg.nmr_form)
        self.esr_form = str(loss_cfg.esr_form)
        self.last_nmr_db: Tensor | None = None
        self.nmr_floor_db = None if loss_cfg.nmr_floor_db is None else float(loss_cfg.nmr_floor_db)
        for key, form, forms in (("nmr_form", self.nmr_form, NMR_FORMS), ("esr_form", self.esr_form, FORMS)):
            if form not in forms:
                raise AaexpError(f"loss.{key}={form!r} is not one of {', '.join(forms)}")

    def emphasise(self, y: Tensor) -> Tensor:
        """Pre-emphasis, then drop the history: Tensor[B x (history+L)] -> Tensor[B x L]."""
        return self.prefilter(y)[:, self.history:]

    def forward(self, input: Tensor, target: Tensor, m: Tensor, weights: Mapping[str, float]):
        y, t = self.emphasise(input), self.emphasise(target)
        terms: dict[str, Tensor] = {}
        y_bl = None
        for name in TERMS:
            w = float(weights.get(name, 0.0))
            if w == 0.0:
                continue
            if name == "esr_normal":
                value = self.esr_normal(y, t)
                value = value if self.esr_form == "power" else torch.log10(value.clamp_min(1e-30))
            elif name == "nmr":
                # The reference trains on the linear ratio of the batch's mean NMR in dB (power); `db`
                # trains on the mean dB itself, whose gradient does not fade as NMR comes down.
                per_tone = self.nmr(y, t)
                self.last_nmr_db = per_tone.detach()   # per tone, before the floor: the trainer's difficulty measure
                if self.nmr_floor_db is not None:  # no reward below the floor: past it, ESR has the say
                    per_tone = per_tone.clamp_min(self.nmr_floor_db)
                if self.nmr_form == "pmean":  # the evaluation's aggregate: the worst tones weigh most
                    value = torch.log10(losses.db_to_power(per_tone).mean())
                else:
                    value = per_tone.mean()
                    value = losses.db_to_power(value) if self.nmr_form == "power" else value / 10.0  # dB -> bels
            elif name == "dc":
                value = self.dc(y, t)
            elif name == "asr":
                value = self.asr(y, m)
            elif name == "harmonic":
                value = self.harmonic(y, t, m)
            else:  # esr / mesr compare the *bandlimited* output with the target
                y_bl = bandlimit(y, m) if y_bl is None else y_bl
                value = self.esr(y_bl, t) if name == "esr" else self.mesr(y_bl, t)
            terms[name] = w * value
        if not terms:
            raise AaexpError("every loss weight is zero: nothing to train")
        total = torch.stack(list(terms.values())).sum()
        return total, terms
