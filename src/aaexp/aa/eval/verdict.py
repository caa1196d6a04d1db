"""The roadmap's decision tree: what to try next, given a new student and the baseline student.

- HESR-R improved (student's all-tone HESR-R below the baseline's by more than `min_gain_db`) and
  NMR-S below the threshold in every band that holds tones -> SUCCESS.
- HESR-R improved but NMR-S at or above the threshold in some band -> TRY_LAMBDA.
- HESR-R not improved -> TRY_HARMONIC_LOSS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

SUCCESS = "success: go on to the extended-f0 experiment"
TRY_LAMBDA = "try λ=0.5"
TRY_HARMONIC_LOSS = "try the harmonic loss"


@dataclass(frozen=True)
class Verdict:
    """`decision` is one of SUCCESS, TRY_LAMBDA, TRY_HARMONIC_LOSS; `reason` says which numbers led there."""

    decision: str
    reason: str


def decide(student_nmr_s: Mapping[str, float], student_hesr_all: float, baseline_hesr_all: float,
           nmr_s_threshold_db: float, min_gain_db: float = 0.0) -> Verdict:
    """Apply the tree. student_nmr_s: band name -> NMR-S dB (NaN for a band without tones, skipped)."""
    if math.isnan(student_hesr_all) or math.isnan(baseline_hesr_all):
        raise ValueError("the verdict needs HESR-R of the student and the baseline (a teacher must be given)")
    gain = baseline_hesr_all - student_hesr_all
    hesr = f"HESR-R {student_hesr_all:.1f} dB vs baseline {baseline_hesr_all:.1f} dB"
    if not gain > min_gain_db:
        return Verdict(TRY_HARMONIC_LOSS, f"{hesr}: not improved")
    loud = [band for band, v in student_nmr_s.items() if not math.isnan(v) and v >= nmr_s_threshold_db]
    if loud:
        return Verdict(TRY_LAMBDA, f"{hesr}: improved, but NMR-S >= {nmr_s_threshold_db:g} dB in {', '.join(loud)}")
    return Verdict(SUCCESS, f"{hesr}: improved, and NMR-S < {nmr_s_threshold_db:g} dB in every band")
