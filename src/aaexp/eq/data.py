"""EQ settings with descriptor labels: the SAFE-DB export, the synthetic stand-in, the split.

SAFE-DB (no header, 25 columns): column 1 is the descriptor, columns 5-17 the 13 parameters in
the layout of `aaexp.eq.params`. See ../shared/data/safe/SOURCE.md.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aaexp.core.errors import AaexpError
from aaexp.eq.params import FREQ_IDX, GAIN_IDX, N_PARAMS, Q_IDX, PluginRanges

log = logging.getLogger("aaexp")
SAFE_COLUMNS = 25
DESCRIPTOR_COL = 1
PARAM_COLS = slice(5, 5 + N_PARAMS)


@dataclass
class EqData:
    """Labelled settings: `params` Array[N x 13] (dB, Hz, Q) and one descriptor per row."""

    params: np.ndarray
    labels: list[str]
    source: str
    stats: dict = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)   # physical line -> why it was skipped

    @property
    def descriptors(self) -> list[str]:
        """Descriptors, most frequent first (ties by name)."""
        counts = Counter(self.labels)
        return sorted(counts, key=lambda d: (-counts[d], d))

    def counts(self) -> dict[str, int]:
        return dict(Counter(self.labels))

    def subset(self, idx: np.ndarray) -> "EqData":
        return EqData(self.params[idx], [self.labels[i] for i in idx], self.source, self.stats, self.skipped)


def _parse_row(row: list[str]) -> tuple[str, np.ndarray] | str:
    """(descriptor, parameters), or why the row is malformed."""
    if len(row) != SAFE_COLUMNS:
        return f"{len(row)} columns, not {SAFE_COLUMNS}"
    word = row[DESCRIPTOR_COL].strip().lower()
    try:
        params = np.array([float(x) for x in row[PARAM_COLS]])
    except ValueError:
        return "a parameter is not a number"
    if not np.isfinite(params).all():
        return "a parameter is not finite"
    if not word:
        return "empty descriptor"
    return word, params


def _physical_rows(fh):
    """(line number, fields or a problem) for every non-blank physical line.

    SAFE-DB has one record per line, so each line is parsed on its own: a quote left open runs
    to the end of its line and no further, and is reported there, instead of swallowing the
    lines after it into one bad record (what a file-wide csv.reader does).
    """
    for lineno, line in enumerate(fh, start=1):
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        try:
            row = next(csv.reader([text], strict=True))
        except csv.Error as exc:
            yield lineno, f"bad quoting ({exc})"
            continue
        if all(not c.strip() for c in row):
            continue
        yield lineno, row


def read_safe_csv(path: str | Path, ranges: PluginRanges) -> EqData:
    """Every well-formed row of a SAFE-DB equaliser export; malformed rows are skipped and counted.

    A row is malformed when its quotes do not close on its own line, it has the wrong number of
    columns, a non-numeric or non-finite parameter, an empty descriptor, or a parameter outside
    the plugin ranges (the plugin cannot have produced it). Skips are reported by physical line.
    """
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = Path.cwd() / p
    if not p.is_file():
        raise AaexpError(f"data.path={path}: no such file ({p})")
    params, labels, skipped, out_of_range = [], [], {}, 0
    with open(p, newline="", encoding="utf-8", errors="replace") as fh:
        for lineno, row in _physical_rows(fh):
            parsed = row if isinstance(row, str) else _parse_row(row)
            if isinstance(parsed, str):
                skipped[lineno] = parsed
                continue
            if not ranges.valid(parsed[1][None])[0]:
                out_of_range += 1
                skipped[lineno] = "outside the plugin ranges"
                continue
            labels.append(parsed[0])
            params.append(parsed[1])
    if skipped:
        why = Counter(skipped.values())
        lines = sorted(skipped)
        shown = f"{lines[:20]}" + (f" and {len(lines) - 20} more" if len(lines) > 20 else "")
        log.warning("%s: skipped %d malformed row(s) (%s) at line(s) %s", p.name, len(skipped),
                    "; ".join(f"{n}: {w}" for w, n in why.most_common()), shown)
    if not params:
        raise AaexpError(f"data.path={path}: no usable rows (expected SAFE-DB's {SAFE_COLUMNS}-column CSV)")
    stats = {"rows_read": len(params) + len(skipped), "rows_skipped": len(skipped), "rows_out_of_range": out_of_range}
    return EqData(np.stack(params), labels, str(p), stats, skipped)


def synthetic(cfg, ranges: PluginRanges) -> EqData:
    """Seeded clusters around `cfg.prototypes`, jittered in dB / octaves / log Q, inside the plugin ranges."""
    rng = np.random.default_rng(cfg.seed)
    lo, hi = ranges.bounds()
    params, labels = [], []
    for word, proto in cfg.prototypes.items():
        proto = np.asarray(list(proto), dtype=np.float64)
        if proto.shape != (N_PARAMS,):
            raise AaexpError(f"data.synthetic.prototypes.{word}: expected {N_PARAMS} values, got {proto.size}")
        n = int(cfg.rows_per_descriptor)
        x = np.repeat(proto[None], n, axis=0)
        x[:, GAIN_IDX] += rng.normal(0.0, cfg.gain_sd_db, (n, len(GAIN_IDX)))
        x[:, FREQ_IDX] *= 2.0 ** rng.normal(0.0, cfg.freq_sd_oct, (n, len(FREQ_IDX)))
        x[:, Q_IDX] *= 10.0 ** rng.normal(0.0, cfg.q_sd_log10, (n, len(Q_IDX)))
        params.append(np.clip(x, lo, hi))
        labels += [str(word)] * n
    params = np.concatenate(params)
    return EqData(params, labels, "synthetic", {"rows_read": len(labels), "rows_skipped": 0, "rows_out_of_range": 0})


def select(data: EqData, min_count: int, exclude=()) -> EqData:
    """Drop excluded descriptors, then those with fewer than `min_count` rows."""
    excluded = {str(w).strip().lower() for w in exclude}
    counts = Counter(w for w in data.labels if w not in excluded)
    keep = np.array([i for i, w in enumerate(data.labels) if w not in excluded and counts[w] >= min_count], dtype=int)
    if keep.size == 0:
        raise AaexpError(f"no descriptor has data.min_count={min_count} rows after excluding {sorted(excluded)}")
    out = data.subset(keep)
    out.stats = {**data.stats, "rows_used": int(keep.size), "descriptors": len(set(out.labels))}
    return out


def split(data: EqData, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-descriptor hold-out: round(val_fraction * n) rows of each descriptor, one always left to train."""
    if not 0.0 <= val_fraction < 1.0:
        raise AaexpError(f"data.val_fraction={val_fraction} must be in [0, 1)")
    rng = np.random.default_rng(seed)
    labels = np.asarray(data.labels)
    train, val = [], []
    for word in data.descriptors:
        idx = rng.permutation(np.flatnonzero(labels == word))
        n_val = min(int(round(val_fraction * idx.size)), idx.size - 1)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def load(cfg) -> EqData:
    """The data set that `cfg.data` asks for, already filtered by descriptor."""
    ranges = PluginRanges.from_cfg(cfg.plugin)
    raw = synthetic(cfg.synthetic, ranges) if cfg.path is None else read_safe_csv(cfg.path, ranges)
    return select(raw, int(cfg.min_count), cfg.exclude or [])
