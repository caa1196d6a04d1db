"""What both reports (the Markdown table and the HTML pages) read from the store and how they show it:
which runs, their short labels, the band order and thresholds of per-band metrics, a table cell."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from aaexp.core.errors import AaexpError


@dataclass
class Layout:
    """How to draw a family of per-band metrics: band order (lower edge in Hz) and thresholds (dB)."""

    band_lo: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_params(cls, runs) -> "Layout":
        out = cls()
        for r in runs:
            for k, v in r.data.params.items():
                try:
                    if k.startswith("eval.bands."):
                        out.band_lo.setdefault(k[len("eval.bands."):], float(json.loads(v)[0]))
                    elif k.startswith("eval.thresholds.") and k.endswith("_db"):
                        out.thresholds.setdefault(k[len("eval.thresholds."):-len("_db")], float(v))
                except (ValueError, TypeError, IndexError, KeyError):
                    continue                      # a param of another shape: just not used for layout
        return out

    def sort_key(self, metric: str) -> tuple:
        fam, _, band = metric.rpartition("/")
        return fam, band == "all", self.band_lo.get(band, math.inf), band


def short_labels(names: list[str]) -> list[str]:
    """Run names without the overrides every run shares (case-blind: a sweep writes `False` where a
    single run keeps `false`), and long paths cut to their last part."""
    tokens = [n.split() for n in names]
    common = set.intersection(*({w.lower() for w in t[1:]} for t in tokens)) if tokens else set()
    out = []
    for t in tokens:
        keep = t[:1] + [w for w in t[1:] if w.lower() not in common]
        out.append(" ".join(w.split("=")[0] + "=…/" + w.rsplit("/", 1)[1] if "=" in w and "/" in w else w for w in keep))
    return out


def select_runs(cl, experiment_names: list[str] | None) -> list:
    """The runs a report shows: FINISHED runs of the named experiments (default every aaexp-*),
    oldest first, without sweep parents (their children carry the results)."""
    exps = [e for e in cl.search_experiments() if (e.name in experiment_names if experiment_names else e.name.startswith("aaexp-"))]
    if not exps:
        raise AaexpError(f"no MLflow experiment {experiment_names or 'aaexp-*'} in {cl.tracking_uri}")
    runs = cl.search_runs([e.experiment_id for e in exps], "attributes.status = 'FINISHED'", order_by=["attributes.start_time ASC"])
    return [r for r in runs if r.data.tags.get("sweep") != "parent"]


def format_value(v) -> str:
    """A cell of the report table: floats to 2 decimals, NaN as n/a, None as empty."""
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.2f}"
    return "" if v is None else str(v)
