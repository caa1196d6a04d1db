"""Numbers that do not exist for their input: NaN with a reason, never a made-up value.

A silhouette needs two clusters; a centroid needs some energy. Where such a number is undefined
it is NaN in MLflow with an `undefined.<metric>` tag saying why, `n/a` in tables, and
"undefined: <reason>" in what a user reads.
"""

from __future__ import annotations

import math
from typing import Mapping

TAG_PREFIX = "undefined."


def fmt(value: float, spec: str = ".3f") -> str:
    """`value` formatted, or n/a when it is not a finite number."""
    return format(value, spec) if value is not None and math.isfinite(value) else "n/a"


def tags(reasons: Mapping[str, str]) -> dict[str, str]:
    """MLflow tags for undefined metrics: {'undefined.<metric>': 'undefined: <reason>'}."""
    return {f"{TAG_PREFIX}{k}": f"undefined: {why}" for k, why in reasons.items()}
