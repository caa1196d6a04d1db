"""Pages of studies without a per-band evaluation (TNCA, EQ): a metrics table and each run's logged
plots, audio and Markdown tables, whatever their names."""

from __future__ import annotations

import fnmatch
from pathlib import PurePosixPath

from aaexp.commands.report_runs import format_value

IMAGES = (".png", ".jpg", ".jpeg", ".gif", ".svg")
AUDIO = (".wav", ".flac", ".mp3", ".ogg")
TEXTS = (".md",)
# A folder of many frames (TNCA's plots/growth/) would swamp the page: its first and last are shown.
MAX_IMAGES_PER_FOLDER = 4


def metrics_table(runs, labels: list[str], metric_glob: str, sort_key) -> dict:
    """Rows = metrics matching the glob (every metric when none of these runs has a match), columns = runs."""
    names = {m for r in runs for m in r.data.metrics if fnmatch.fnmatch(m, metric_glob)}
    shown_glob = metric_glob
    if not names:
        names, shown_glob = {m for r in runs for m in r.data.metrics}, "*"
    return {"glob": shown_glob, "runs": labels,
            "rows": [{"name": m, "cells": [format_value(r.data.metrics.get(m)) for r in runs]} for m in sorted(names, key=sort_key)]}


def _thin(paths: list[str]) -> tuple[list[str], int]:
    """At most MAX_IMAGES_PER_FOLDER images per folder (first ones and the last); how many were left out."""
    by_folder: dict[str, list[str]] = {}
    for p in paths:
        by_folder.setdefault(str(PurePosixPath(p).parent), []).append(p)
    kept, left = [], 0
    for group in by_folder.values():
        if len(group) > MAX_IMAGES_PER_FOLDER:
            left += len(group) - MAX_IMAGES_PER_FOLDER
            group = group[:MAX_IMAGES_PER_FOLDER - 1] + group[-1:]
        kept += group
    return kept, left


def run_card(run, files, label: str, params: list[tuple[str, str]]) -> dict:
    """What the page shows of one run: its plots, audio players and Markdown tables."""
    paths = files.walk()
    images, left_out = _thin([p for p in paths if p.lower().endswith(IMAGES)])
    tags = run.data.tags
    return {
        "anchor": f"run-{run.info.run_id[:8]}", "id8": run.info.run_id[:8], "label": label, "name": run.info.run_name,
        "experiment": tags.get("experiment", tags.get("kind", "")), "verdict": tags.get("verdict", ""),
        "verdict_reason": tags.get("verdict_reason", ""), "params": params, "all_params": sorted(run.data.params.items()),
        "images": [{"src": files.copy(p), "caption": p} for p in images], "images_left_out": left_out,
        "audio": [{"src": files.copy(p), "label": p} for p in paths if p.lower().endswith(AUDIO)],
        "texts": [{"name": p, "text": files.local(p).read_text(errors="replace")} for p in paths if p.lower().endswith(TEXTS)],
    }
