"""Plot the worst band's NMR-S and HESR-R against wall time for training runs with in-training evaluation,
and print each run's per-band table at time to target and at the end beside a reference evaluation.

    python scripts/plot_time_to_target.py --uri sqlite:///mlflow.db --out experiments/aa/time_to_target.png \
        "TCN fast=RUN_ID" "LSTM fast=RUN_ID" [--reference "TCN fast=experiments/aa/eval_jhm8_tcn.json"]

Reads `eval/nmr_s/<band>`, `eval/hesr_r/<band>` and `perf/wall_s` (logged at the same update count) from
MLflow; the worst band is the highest value over the bands that hold tones. Thresholds are drawn from
the evaluation config the runs logged (params eval.thresholds.*).
"""

from __future__ import annotations

import argparse
import math
import sys


def worst_band_curves(cl, run_id: str) -> dict[str, list[tuple[float, float]]]:
    """{"nmr_s": [(wall_s, dB)], "hesr_r": [...]}: the worst band at each in-training evaluation."""
    run = cl.get_run(run_id)
    keys = [k for k in run.data.metrics if k.startswith(("eval/nmr_s/", "eval/hesr_r/")) and not k.endswith("/all")
            and "_max/" not in k]
    wall = {m.step: m.value for m in cl.get_metric_history(run_id, "perf/wall_s")}
    evals = {m.step for m in cl.get_metric_history(run_id, "eval/excess_db")}
    out: dict[str, list[tuple[float, float]]] = {"nmr_s": [], "hesr_r": []}
    for family in out:
        per_step: dict[int, float] = {}
        for k in (k for k in keys if k.startswith(f"eval/{family}/")):
            for m in cl.get_metric_history(run_id, k):
                if m.step in evals and m.step in wall and not math.isnan(m.value):
                    per_step[m.step] = max(per_step.get(m.step, -math.inf), m.value)
        out[family] = [(wall[s], v) for s, v in sorted(per_step.items())]
    return out


BANDS = ("20-500", "500-2k", "2k-8k", "8k-12k")


def _cell(v: float | None, thr: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.1f} {'✓' if v < thr else '✗'}"


def band_table(cl, label: str, run_id: str, reference: str | None, nmr_thr: float, hesr_thr: float) -> str:
    """Markdown rows: teacher, the reference student (a committed `aaexp eval` JSON), the run at TTT and at the end."""
    import json

    run = cl.get_run(run_id)
    m = run.data.metrics
    rows = [("teacher", {b: (m.get(f"eval/teacher/nmr_s/{b}"), m.get(f"eval/teacher/hesr_r/{b}")) for b in BANDS})]
    if reference:
        ref = json.loads(open(reference).read())
        by = {(r["model"], r["band"]): r for r in ref["rows"]}
        rows.append(("DAFx25 student", {b: (by["student", b]["nmr_s_db"], by["student", b]["hesr_r_db"]) for b in BANDS}))
    ttt = m.get("perf/time_to_target_s")
    if ttt is not None and not math.isnan(ttt):
        rows.append((f"aaexp at TTT ({ttt / 60:.1f} min, {m['perf/updates_to_target']:.0f} updates)",
                     {b: (m.get(f"target/nmr_s/{b}"), m.get(f"target/hesr_r/{b}")) for b in BANDS}))
    rows.append((f"aaexp at the end ({m.get('perf/train_wall_s', math.nan) / 60:.0f} min, {m.get('perf/updates', 0):.0f} updates, "
                 f"best by eval/excess_db)", {b: (m.get(f"eval/nmr_s/{b}"), m.get(f"eval/hesr_r/{b}")) for b in BANDS}))
    out = [f"**{label}** — NMR-S / HESR-R in dB per f0 band (✓ below −10 / −15 dB)", "",
           "| model | " + " | ".join(BANDS) + " |", "|---|" + "---|" * len(BANDS)]
    for name, vals in rows:
        out.append(f"| {name} | " + " | ".join(f"{_cell(vals[b][0], nmr_thr)} / {_cell(vals[b][1], hesr_thr)}" for b in BANDS) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mlflow.tracking import MlflowClient

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--uri", default="sqlite:///mlflow.db")
    p.add_argument("--out", default="time_to_target.png")
    p.add_argument("--nmr-threshold", type=float, default=-10.0)
    p.add_argument("--hesr-threshold", type=float, default=-15.0)
    p.add_argument("--reference", action="append", default=[], metavar="LABEL=JSON",
                   help="an `aaexp eval --json` result to print beside the run with the same label")
    p.add_argument("runs", nargs="+", metavar="LABEL=RUN_ID[@URI]")
    args = p.parse_args(argv)
    cl = MlflowClient(args.uri)
    refs = dict(r.rsplit("=", 1) for r in args.reference)
    for spec in args.runs:
        label, run_id = spec.rsplit("=", 1)
        run_id, _, uri = run_id.partition("@")
        print(band_table(MlflowClient(uri) if uri else cl, label, run_id, refs.get(label), args.nmr_threshold,
                         args.hesr_threshold), "\n")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for spec in args.runs:
        label, run_id = spec.rsplit("=", 1)
        run_id, _, uri = run_id.partition("@")          # LABEL=RUN_ID@URI: a run in another store
        curves = worst_band_curves(MlflowClient(uri) if uri else cl, run_id)
        for ax, family in zip(axes, ("nmr_s", "hesr_r")):
            pts = curves[family]
            if pts:
                ax.plot([t / 60 for t, _ in pts], [v for _, v in pts], marker="o", ms=3, label=label)
    for ax, name, thr in ((axes[0], "NMR-S", args.nmr_threshold), (axes[1], "HESR-R", args.hesr_threshold)):
        ax.axhline(thr, color="k", ls="--", lw=1)
        ax.set_xlabel("wall time since `aaexp train` started (min)")
        ax.set_ylabel(f"worst band {name} (dB)")
        ax.set_title(f"{name}: worst band (target below the dashed line)")
        ax.grid(alpha=0.3)
    axes[1].set_ylim(top=max(5.0, axes[1].get_ylim()[1]), bottom=max(-60.0, axes[1].get_ylim()[0]))
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
