"""What an evaluation produced, and its outputs: table (text, Markdown, CSV, JSON), metrics, plots.

Metric names (MLflow): `eval/nmr_s/<band>`, `eval/hesr_r/<band>` (+ `_max`) for the student,
`eval/teacher/...` and `eval/baseline/...` for the others, `eval/oversample_<k>/...` for the
teacher run at k·fs (model "teacher ×k", with `cost_vs_teacher`), `eval/n_tones/<band>`; n/a is NaN.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from aaexp.aa.eval.grid import Band, ToneGrid
from aaexp.aa.eval.scores import ToneScores
from aaexp.core import tables

ORDER = ("teacher", "baseline", "student")
OVERSAMPLED = "teacher ×"   # + k: the teacher run at k·fs (aaexp.aa.eval.oversample)


def oversampled_name(k: int) -> str:
    return f"{OVERSAMPLED}{int(k)}"


def oversample_factor(name: str) -> int | None:
    """k for "teacher ×k", else None."""
    return int(name[len(OVERSAMPLED):]) if name.startswith(OVERSAMPLED) else None


def _rank(name: str) -> tuple[int, int]:
    """Table order: teacher, teacher ×k (ascending k), baseline, student."""
    k = oversample_factor(name)
    return (1, k) if k is not None else (ORDER.index(name) * 2 if name in ORDER else 9, 0)
CSV_FIELDS = ["model", "band", "lo_hz", "hi_hz", "n_tones", "nmr_s_db", "nmr_s_max_db", "nmr_s_pass",
              "n_tones_hesr", "hesr_r_db", "hesr_r_max_db", "hesr_r_pass"]


@dataclass
class ModelEval:
    """One model's per-tone scores, its table rows, and how its tones were run."""

    scores: ToneScores
    rows: list[dict]
    warmup: torch.Tensor          # LongTensor[B], samples
    mismatch_db: torch.Tensor     # Tensor[B], periodicity check
    unsettled: list[int] = field(default_factory=list)   # tones still not periodic after the longest warm-up


def _num(v) -> float | None:
    """JSON has no NaN: n/a becomes null."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def format_db(v: float, passed: bool | None) -> str:
    """A table cell: the value in dB to 0.1, ✓ below its threshold, ✗ at or above; n/a for NaN."""
    if math.isnan(v):
        return "n/a"
    return f"{v:7.1f} {'✓' if passed else '✗'}"


def header_lines(meta: dict) -> list[str]:
    """The two lines above a table: the grid (rate, window, tones, levels, grouping) and the thresholds."""
    m = meta
    lv = ", ".join(f"{v:g}" for v in m["levels_dbfs"])
    thr = m["thresholds"]
    return [f"fs {m['fs']} Hz · window N={m['n_window']} ({m['window_s']:.3f} s) · {m['n_tones']} tones "
            f"{m['f_min_hz']:.1f}–{m['f_max_hz']:.0f} Hz at {lv} dBFS (snapped ≤ {m['max_snap_cents']:.2f} cents) "
            f"· group_by={m['group_by']}",
            f"band value = power mean over its tones; ✓ below threshold (NMR-S < {thr['nmr_s_db']:g} dB inaudible, "
            f"HESR-R < {thr['hesr_r_db']:g} dB good), ✗ at or above; floor {m['floor_db']:g} dB"]


def oversample_lines(meta: dict) -> list[str]:
    """One line per oversampling factor in an evaluation's meta (table.json "meta"): its filter and its cost."""
    out = []
    for o in meta.get("oversample", []):
        f = o["filter"]
        out.append(f"{o['model']}: the teacher at {o['factor']}·fs (resample_poly, Kaiser β={f['beta']:g}, {f['taps']} taps, "
                   f"pass ≤ {f['pass_edge_re_nyquist']:g}·fs/2, stop ≥ fs/2 at {f['stopband_db']:g} dB); cost "
                   f"{o['cost_vs_teacher']:.1f}× the teacher's evaluation time (model runs {o['run_cost_vs_teacher']:.1f}×, "
                   f"{o['run_s'] + o['score_s']:.1f} s)")
    return out


@dataclass
class EvalResult:
    """Result of aaexp.aa.eval.evaluator.evaluate: `.rows`, `.metrics`, `.verdict`, `.format_table()`, `.log_to()`."""

    grid: ToneGrid
    bands: list[Band]
    models: dict[str, ModelEval]
    verdict: str | None
    verdict_reason: str | None
    warnings: list[str]
    meta: dict
    sweeps: dict[str, np.ndarray] = field(default_factory=dict)
    sweep_hop: int = 256
    sweep_range_db: float = 120.0

    @property
    def names(self) -> list[str]:
        """The models in table order: teacher, teacher ×k, baseline, student."""
        return sorted(self.models, key=_rank)

    @property
    def rows(self) -> list[dict]:
        """Per-band rows of every model (teacher, teacher ×k, baseline, student), each band then "all"."""
        return [r for name in self.names for r in self.models[name].rows]

    def prefix(self, name: str) -> str:
        """Metric prefix: the student logs as plain `eval/`, the others as `eval/teacher/`, `eval/baseline/`,
        `eval/oversample_<k>/`."""
        k = oversample_factor(name)
        return "eval/" if name == "student" else f"eval/oversample_{k}/" if k is not None else f"eval/{name}/"

    @property
    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for item in self.meta.get("oversample", []):
            out[f"eval/oversample_{item['factor']}/cost_vs_teacher"] = float(item["cost_vs_teacher"])
        for name in self.names:
            p = self.prefix(name)
            for r in self.models[name].rows:
                for key in ("nmr_s", "nmr_s_max", "hesr_r", "hesr_r_max"):
                    out[f"{p}{key}/{r['band']}"] = r[f"{key}_db"]
                out[f"eval/n_tones/{r['band']}"] = float(r["n_tones"])
            out[f"{p}unsettled_tones"] = float(len(self.models[name].unsettled))
        out["eval/max_snap_cents"] = self.meta["max_snap_cents"]
        return out

    def tones(self) -> list[dict]:
        """One dict per tone: f0, m, level, and each model's NMR-S, HESR-R, warm-up and periodicity."""
        out = []
        for i in range(len(self.grid)):
            t = {"f0_hz": float(self.grid.f0[i]), "f0_nominal_hz": float(self.grid.f0_nominal[i]), "m": int(self.grid.m[i]),
                 "level_dbfs": float(self.grid.level_dbfs[i])}
            for name, ev in self.models.items():
                t[name] = {"nmr_s_db": float(ev.scores.nmr_s[i]), "hesr_r_db": _num(float(ev.scores.hesr_r[i])),
                           "warmup_s": int(ev.warmup[i]) / self.grid.fs, "periodicity_mismatch_db": float(ev.mismatch_db[i])}
            out.append(t)
        return out

    # -- text ------------------------------------------------------------------------------------
    def header(self) -> list[str]:
        return header_lines(self.meta)

    def _table_lines(self) -> list[list[str]]:
        lines = []
        for band in [b.name for b in self.bands] + ["all"]:
            for k, name in enumerate(self.names):
                r = next(r for r in self.models[name].rows if r["band"] == band)
                hesr = format_db(r["hesr_r_db"], r["hesr_r_pass"])
                if r["n_tones_hesr"] != r["n_tones"] and r["n_tones_hesr"]:
                    hesr += f" ({r['n_tones_hesr']})"
                lines.append([band if k == 0 else "", str(r["n_tones"]) if k == 0 else "", name,
                              format_db(r["nmr_s_db"], r["nmr_s_pass"]), hesr])
        return lines

    def oversample_lines(self) -> list[str]:
        """One line per oversampling factor: its filter and its cost against the plain teacher."""
        return oversample_lines(self.meta)

    def format_table(self) -> str:
        """The per-band table as aligned text, with header, oversampling cost, verdict and warnings."""
        head = ["band", "tones", "model", "NMR-S dB", "HESR-R dB"]
        body = self._table_lines()
        widths = [max(len(x) for x in col) for col in zip(head, *body)]
        fmt = lambda cells: "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
        out = self.header() + ["", fmt(head), "  ".join("-" * w for w in widths)] + [fmt(c) for c in body]
        if self.meta.get("oversample"):
            out += [""] + self.oversample_lines()
        if self.verdict:
            out += ["", f"verdict: {self.verdict} ({self.verdict_reason})"]
        out += [f"warning: {w}" for w in self.warnings]
        return "\n".join(out)

    def format_markdown(self) -> str:
        """The same table in Markdown (for experiments/ notes)."""
        out = [*(f"{h}  " for h in self.header()), "",
               tables.markdown(["band", "tones", "model", "NMR-S dB", "HESR-R dB"],
                               [[c.strip() for c in cells] for cells in self._table_lines()], right=(1, 3, 4))]
        if self.meta.get("oversample"):
            out += [""] + [f"{line}  " for line in self.oversample_lines()]
        if self.verdict:
            out += ["", f"**verdict:** {self.verdict} ({self.verdict_reason})"]
        out += [f"\n> warning: {w}" for w in self.warnings]
        return "\n".join(out)

    def to_dict(self) -> dict:
        """Everything machine-readable: meta, rows, per-tone values, verdict, warnings (NaN -> null)."""
        return {"meta": self.meta, "rows": [{k: _num(v) for k, v in r.items()} for r in self.rows],
                "tones": self.tones(), "verdict": self.verdict, "verdict_reason": self.verdict_reason,
                "warnings": self.warnings}

    # -- files -----------------------------------------------------------------------------------
    def figures(self) -> dict[str, object]:
        """{'plots/<name>.png': matplotlib Figure}."""
        from aaexp.aa.eval import plots as eval_plots
        thr = self.meta["thresholds"]
        per_model = {n: {"nmr_s": ev.scores.nmr_s.numpy(), "hesr_r": ev.scores.hesr_r.numpy()} for n, ev in self.models.items()}
        figs = {"plots/bands.png": eval_plots.band_bars(self.rows, thr, self.meta["floor_db"]),
                "plots/tones.png": eval_plots.tone_curves(self.grid.f0.numpy(), per_model, thr, self.grid.level_dbfs.numpy())}
        if self.sweeps:
            figs["plots/sweep_spectrograms.png"] = eval_plots.sweep_spectrograms(self.sweeps, self.grid.fs, self.sweep_hop,
                                                                             self.sweep_range_db)
        return figs

    def write_tables(self, out_dir: str | Path) -> list[Path]:
        """Write table.csv, table.json and table.md under out_dir; returns the paths."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / "table.csv", out_dir / "table.json", out_dir / "table.md"]
        with open(paths[0], "w", newline="") as f:
            w = csv.DictWriter(f, CSV_FIELDS)
            w.writeheader()
            for r in self.rows:
                w.writerow({k: ("n/a" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items() if k in CSV_FIELDS})
        paths[1].write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False))
        paths[2].write_text(self.format_markdown() + "\n")
        return paths

    def write_plots(self, out_dir: str | Path) -> list[Path]:
        """Write the PNG plots under out_dir/plots; returns the paths."""
        (Path(out_dir) / "plots").mkdir(parents=True, exist_ok=True)
        paths = []
        for name, fig in self.figures().items():
            fig.savefig(Path(out_dir) / name, dpi=120)
            paths.append(Path(out_dir) / name)
        return paths

    def write(self, out_dir: str | Path, plots: bool = True) -> list[Path]:
        """Tables, then (optionally) plots under out_dir; returns the paths."""
        return self.write_tables(out_dir) + (self.write_plots(out_dir) if plots else [])

    def log_to(self, tracker, out_dir: str | Path, plots: bool = True) -> list[Path]:
        """Write the files and log them, the metrics and the verdict tag to `tracker` (None: write only).

        Numbers first, pictures last: if plotting fails, the tables and metrics are already saved.
        """
        paths = self.write_tables(out_dir)
        if tracker is not None:
            tracker.log_metrics(self.metrics)
            tags = {"eval.group_by": self.meta["group_by"], "eval.fs": self.meta["fs"]}
            if self.verdict:
                tags.update(verdict=self.verdict, verdict_reason=self.verdict_reason)
            if self.warnings:
                tags["eval.warnings"] = " | ".join(self.warnings)
            tracker.set_tags(tags)
            for p in paths:
                tracker.log_artifact(p, "eval")
        if plots:
            figs = self.write_plots(out_dir)
            for p in figs if tracker is not None else []:
                tracker.log_artifact(p, "eval/plots")
            paths += figs
        return paths
