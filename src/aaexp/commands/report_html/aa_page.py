"""The anti-aliasing study's page: per-band tables across runs, and one card per run.

Numbers come from each run's `eval/table.json` (what `aaexp eval` and training log) and are written
as the text table writes them (aaexp.aa.eval.table.format_db). Plots and the real-audio check are
the run's own artifacts, copied in; a run without a real-audio check says so in one line.
"""

from __future__ import annotations

import json
import math

from aaexp.aa.eval.table import format_db, header_lines, oversample_factor, oversample_lines
from aaexp.commands.report_runs import format_value

TABLE = "eval/table.json"
PLOTS = [("eval/plots/bands.png", "NMR-S and HESR-R per band, thresholds dashed"),
         ("eval/plots/tones.png", "NMR-S and HESR-R per test tone against f0"),
         ("eval/plots/sweep_spectrograms.png", "log sine sweep 20 Hz → 20 kHz: harmonics rise, aliases fold back down")]
AUDIO_CHECK = "eval/audio_check"
PLAYERS = [("di.wav", "DI (input)"), ("teacher.wav", "teacher"), ("teacher_x2.wav", "teacher ×2"), ("student.wav", "student")]
METRICS = [("nmr_s", "NMR-S (dB): aliasing left in the model's output, against the masking threshold of its harmonics"),
           ("hesr_r", "HESR-R (dB): how far the model's harmonics moved from the teacher's")]


def _value(v) -> float:
    return math.nan if v is None else float(v)   # table.json writes n/a as null


def _cell(row: dict | None, key: str) -> dict:
    if row is None:
        return {"text": "", "cls": ""}
    v, passed = _value(row[f"{key}_db"]), row[f"{key}_pass"]
    return {"text": format_db(v, passed).strip(), "cls": "na" if math.isnan(v) else "pass" if passed else "fail"}


def _is_teacher_side(model: str) -> bool:
    return model == "teacher" or oversample_factor(model) is not None


def band_tables(cards: list[dict]) -> list[dict]:
    """Two tables (NMR-S, HESR-R): rows = each distinct teacher / teacher ×k, then each run's student; columns = bands."""
    with_table = [c for c in cards if c["table"]]
    if not with_table:
        return []
    bands = list(dict.fromkeys(r["band"] for c in with_table for r in c["table"]["rows"]))
    teachers = {c["teacher"] for c in with_table}
    out = []
    for key, title in METRICS:
        rows, seen = [], set()
        for c in with_table:
            by_model: dict[str, dict[str, dict]] = {}
            for r in c["table"]["rows"]:
                by_model.setdefault(r["model"], {})[r["band"]] = r
            for model, per_band in by_model.items():
                cells = [_cell(per_band.get(b), key) for b in bands]
                if _is_teacher_side(model):
                    # the same teacher evaluated on the same grid gives the same row: show it once
                    ident = (model, c["teacher"], tuple(x["text"] for x in cells))
                    if ident in seen:
                        continue
                    seen.add(ident)
                    label = model if len(teachers) == 1 else f"{model} ({c['teacher']})"
                    rows.append({"label": label, "anchor": None, "cells": cells, "kind": "teacher"})
                elif model == "student":
                    rows.append({"label": c["label"], "anchor": c["anchor"], "cells": cells, "kind": "student"})
        # teacher-side rows first (teacher, then ×k), students in run order
        rows.sort(key=lambda r: r["kind"] != "teacher")
        thr = next((c["table"]["meta"].get("thresholds", {}).get(f"{key}_db") for c in with_table), None)
        out.append({"key": key, "title": title, "threshold": thr, "bands": bands, "rows": rows})
    return out


def run_table(table: dict) -> list[list[dict]]:
    """A run's own table in the text table's layout: band, tones, model, NMR-S, HESR-R (HESR-R tone count if it differs)."""
    rows = table["rows"]
    bands = list(dict.fromkeys(r["band"] for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    out = []
    for band in bands:
        for k, model in enumerate(models):
            r = next((r for r in rows if r["band"] == band and r["model"] == model), None)
            if r is None:
                continue
            hesr = _cell(r, "hesr_r")
            if r["n_tones_hesr"] != r["n_tones"] and r["n_tones_hesr"]:
                hesr = {**hesr, "text": f"{hesr['text']} ({r['n_tones_hesr']})"}
            out.append([{"text": band if k == 0 else "", "cls": ""}, {"text": str(r["n_tones"]) if k == 0 else "", "cls": ""},
                        {"text": model, "cls": ""},
                        _cell(r, "nmr_s"), hesr])
    return out


def _flatten(d, prefix: str = "") -> list[tuple[str, str]]:
    """Scalar leaves of a JSON object as (dotted key, formatted value); lists are left out."""
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _flatten(v, key + ".")
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out.append((key, _scalar(v)))
    return out


def _scalar(v) -> str:
    return "n/a" if v is None else format_value(float(v)) if isinstance(v, float) else str(v)


def side_table(check: dict) -> dict | None:
    """audio_check.json's "sides" (side -> its numbers) as a table: a row per side, a column per number."""
    sides = check.get("sides")
    if not isinstance(sides, dict) or not all(isinstance(v, dict) for v in sides.values()):
        return None
    keys = list(dict.fromkeys(k for v in sides.values() for k, x in v.items() if not isinstance(x, (dict, list))))
    return {"keys": keys, "rows": [[side, *(_scalar(v.get(k)) for k in keys)] for side, v in sides.items()]}


def audio_check(files) -> dict | None:
    """The real-audio check of a run (players, spectrograms, numbers), or None when it has none."""
    names = {f.path.rsplit("/", 1)[-1] for f in files.listdir(AUDIO_CHECK) if not f.is_dir}
    players = [{"label": label, "src": files.copy(f"{AUDIO_CHECK}/{name}")} for name, label in PLAYERS if name in names]
    if not players and "spectrograms.png" not in names:
        return None
    check = json.loads(files.local(f"{AUDIO_CHECK}/audio_check.json").read_text()) if "audio_check.json" in names else {}
    sides = side_table(check)
    # the rest of the JSON (what was played, filters) in a fold; per-note lists stay in the copied file
    rest = _flatten({k: v for k, v in check.items() if not (sides and k == "sides")})
    spectrograms = files.copy(f"{AUDIO_CHECK}/spectrograms.png") if "spectrograms.png" in names else None
    json_src = str(files.rel_root / AUDIO_CHECK / "audio_check.json") if "audio_check.json" in names else None
    return {"players": players, "spectrograms": spectrograms, "sides": sides, "numbers": rest, "json": json_src}


def run_card(run, files, label: str, params: list[tuple[str, str]]) -> dict:
    """What the page shows of one run."""
    tags = run.data.tags
    table = json.loads(files.local(TABLE).read_text()) if files.exists(TABLE) else None
    return {
        "anchor": f"run-{run.info.run_id[:8]}", "id8": run.info.run_id[:8], "label": label, "name": run.info.run_name,
        "experiment": tags.get("experiment", tags.get("kind", "")), "verdict": tags.get("verdict", ""),
        "verdict_reason": tags.get("verdict_reason", ""), "teacher": tags.get("teacher", tags.get("eval.teacher", "")).rsplit("/", 1)[-1],
        "params": params, "all_params": sorted(run.data.params.items()),
        "table": table, "table_rows": run_table(table) if table else [],
        "header": header_lines(table["meta"]) if table else [],
        "oversample": oversample_lines(table["meta"]) if table else [],
        "warnings": table.get("warnings", []) if table else [],
        "plots": [{"src": files.copy(p), "caption": cap} for p, cap in PLOTS if files.exists(p)],
        "audio": audio_check(files),
    }


def page(cards: list[dict]) -> dict:
    """The template's context for the study beyond its run cards."""
    listening = [{"label": c["label"], "anchor": c["anchor"], "players": c["audio"]["players"]}
                 for c in cards if c["audio"] and c["audio"]["players"]]
    return {"band_tables": band_tables(cards), "listening": listening,
            "player_labels": [label for _, label in PLAYERS]}
