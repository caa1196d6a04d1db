"""`aaexp report`: one comparison table of finished runs, from the MLflow store.

Columns: the run, its experiment tag, chosen params (default `loss.lam`), metrics matching a glob
(default `eval/*`) and chosen tags (default `verdict`). Written as Markdown + CSV, plus a grouped
bar plot of metrics named `<family>/<band>` (e.g. eval/nmr_s/2k-8k). Bands are ordered by frequency
and thresholds drawn where the runs logged them (params `eval.bands.<band>`,
`eval.thresholds.<family>_db`).
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
from collections import defaultdict
from pathlib import Path

from aaexp.commands.report_runs import Layout, format_value, select_runs, short_labels
from aaexp.core import tables
from aaexp.core.errors import AaexpError
from aaexp.tracking import store as tracking


def collect(uri: str | None, experiment_names: list[str] | None, metric_glob: str, params: list[str], tags: list[str]):
    runs = select_runs(tracking.client(uri), experiment_names)
    layout = Layout.from_params(runs)
    metric_names = sorted({m for r in runs for m in r.data.metrics if fnmatch.fnmatch(m, metric_glob)}, key=layout.sort_key)
    rows = []
    for r in runs:
        row = {"run": r.info.run_name, "run_id": r.info.run_id[:8], "experiment": r.data.tags.get("experiment", "")}
        row.update({p: r.data.params.get(p, "") for p in params})
        row.update({m: r.data.metrics.get(m) for m in metric_names})
        row.update({t: r.data.tags.get(t, "") for t in tags})
        rows.append(row)
    return rows, metric_names, layout


def to_markdown(rows: list[dict]) -> str:
    cols = list(rows[0])
    return tables.markdown(cols, [[format_value(r[c]) for c in cols] for r in rows])


def plot(rows: list[dict], metric_names: list[str], path: Path, layout: Layout | None = None) -> bool:
    """Grouped bars per metric family (`a/b/<band>` -> family `a/b`); False if nothing to plot."""
    layout = layout or Layout()
    families = defaultdict(list)
    for m in metric_names:
        fam, _, band = m.rpartition("/")
        if fam:
            families[fam].append(m)
    if not families:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = short_labels([r["run"] for r in rows])
    fig, axes = plt.subplots(len(families), 1, figsize=(10, 3.2 * len(families)), squeeze=False)
    for ax, (fam, names) in zip(axes[:, 0], sorted(families.items())):
        x = np.arange(len(names))
        w = 0.8 / max(len(rows), 1)
        for i, (r, label) in enumerate(zip(rows, labels)):
            vals = [r[n] if r[n] is not None else np.nan for n in names]
            ax.bar(x + i * w, vals, w, label=label[:60])
        thr = layout.thresholds.get(fam.rpartition("/")[2])
        if thr is not None:
            ax.axhline(thr, color="k", ls="--", lw=0.8, label=f"threshold {thr:g} dB")
        ax.set_xticks(x + 0.4 - w / 2, [n.rpartition("/")[2] for n in names])
        ax.set_title(fam)
        ax.set_ylabel("dB" if "nmr" in fam or "esr" in fam else "")
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="aaexp report", description="Compare finished runs from MLflow.")
    p.add_argument("--experiment-name", action="append", help="MLflow experiment(s) (default: every aaexp-*)")
    p.add_argument("--metrics", default="eval/*", help="glob of metric names to show (default: eval/*)")
    p.add_argument("--param", action="append", help="param columns (default: loss.lam)")
    p.add_argument("--tag", action="append", help="tag columns (default: verdict)")
    p.add_argument("--out", default="reports", help="folder for report.md, report.csv, report.png")
    p.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db")
    p.add_argument("--html", metavar="OUT_DIR", help="instead: a static page per study in OUT_DIR/<study>/index.html, "
                   "with its tables, plots and audio copied in (opens from disk)")
    args = p.parse_args(argv)
    if args.html:
        from aaexp.commands.report_html.build import write_html

        pages = write_html(args.tracking_uri, args.experiment_name, Path(args.html), args.param or ["loss.lam"], args.metrics)
        print("\n".join(str(p) for p in pages))
        return 0
    rows, metric_names, layout = collect(args.tracking_uri, args.experiment_name, args.metrics, args.param or ["loss.lam"],
                                         args.tag or ["verdict"])
    if not rows:
        raise AaexpError("no finished runs to report")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    md = to_markdown(rows)
    (out / "report.md").write_text(md + "\n")
    with open(out / "report.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(md)
    wrote = ["report.md", "report.csv"] + (["report.png"] if plot(rows, metric_names, out / "report.png", layout) else [])
    print(f"\n{len(rows)} runs; wrote {', '.join(str(out / n) for n in wrote)}")
    return 0
