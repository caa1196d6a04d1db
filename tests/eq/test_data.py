"""The SAFE-DB loader on the real export, malformed rows, the synthetic set and the split."""

import csv
from collections import Counter

import numpy as np
import pytest

from aaexp.core.config import compose
from aaexp.core.errors import AaexpError
from aaexp.eq import data as eq_data
from aaexp.eq.params import PluginRanges


@pytest.fixture(scope="module")
def cfg():
    return compose(["study=eq"])


@pytest.fixture(scope="module")
def ranges(cfg):
    return PluginRanges.from_cfg(cfg.data.plugin)


@pytest.fixture(scope="module")
def safe_csv(shared_data):
    return shared_data / "safe" / "SAFEEqualiserUserData.csv"


def test_real_csv_counts(safe_csv, ranges):
    raw = eq_data.read_safe_csv(safe_csv, ranges)
    assert raw.stats == {"rows_read": 1700, "rows_skipped": 0, "rows_out_of_range": 0}
    counts = raw.counts()
    assert counts["warm"] == 532 and counts["bright"] == 504 and counts["test"] == 181
    assert len(counts) == 328
    # Independent reading with the csv module: column 1 lower-cased and trimmed.
    with open(safe_csv, newline="") as fh:
        words = Counter(r[1].strip().lower() for r in csv.reader(fh))
    assert counts == dict(words)
    # Parameters: columns 5-17 in file order.
    with open(safe_csv, newline="") as fh:
        first = next(csv.reader(fh))
    np.testing.assert_array_equal(raw.params[0], [float(x) for x in first[5:18]])


def test_min_count_and_exclusion(safe_csv, ranges):
    raw = eq_data.read_safe_csv(safe_csv, ranges)
    sel = eq_data.select(raw, 5)
    assert len(sel.descriptors) == 14
    assert sel.descriptors[:3] == ["warm", "bright", "test"]
    assert len(sel.labels) == sum(c for c in raw.counts().values() if c >= 5)
    no_test = eq_data.select(raw, 5, exclude=["Test "])
    assert "test" not in no_test.descriptors and len(no_test.descriptors) == 13


def test_load_with_relative_path(cfg, shared_data, monkeypatch):
    monkeypatch.chdir(shared_data / "safe")
    c = cfg.data.copy()
    c.path = "SAFEEqualiserUserData.csv"
    d = eq_data.load(c)
    assert d.stats["rows_read"] == 1700 and len(d.descriptors) == 14


def test_malformed_rows_are_skipped_and_counted(tmp_path, safe_csv, ranges, caplog):
    with open(safe_csv, newline="") as fh:
        good = [r for _, r in zip(range(6), csv.reader(fh))]
    bad_short = good[0][:10]
    bad_text = list(good[1])
    bad_text[7] = "loud"
    bad_nan = list(good[2])
    bad_nan[9] = "nan"
    bad_word = list(good[3])
    bad_word[1] = "   "
    bad_range = list(good[4])
    bad_range[17] = "1600000"
    path = tmp_path / "safe.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([good[5], bad_short, bad_text, bad_nan, [], bad_word, bad_range, good[0]])
    d = eq_data.read_safe_csv(path, ranges)
    assert d.stats == {"rows_read": 7, "rows_skipped": 5, "rows_out_of_range": 1}
    assert d.labels == [good[5][1].strip().lower(), good[0][1].strip().lower()]
    assert "skipped 5 malformed" in caplog.text


def test_missing_file_is_a_one_line_error(ranges, tmp_path):
    with pytest.raises(AaexpError, match="no such file"):
        eq_data.read_safe_csv(tmp_path / "nope.csv", ranges)


def test_synthetic_is_seeded_and_inside_the_plugin_ranges(cfg, ranges):
    a = eq_data.synthetic(cfg.data.synthetic, ranges)
    b = eq_data.synthetic(cfg.data.synthetic, ranges)
    np.testing.assert_array_equal(a.params, b.params)
    assert ranges.valid(a.params).all()
    n = cfg.data.synthetic.rows_per_descriptor
    assert a.counts() == {w: n for w in cfg.data.synthetic.prototypes}
    other = cfg.data.synthetic.copy()
    other.seed = 1
    assert not np.array_equal(eq_data.synthetic(other, ranges).params, a.params)
    # warm-like rows boost band 1 and cut band 5, bright-like ones the reverse (gain columns 0 and 11)
    lab = np.asarray(a.labels)
    warm, bright = a.params[lab == "warm"], a.params[lab == "bright"]
    assert warm[:, 0].mean() > 0 > warm[:, 11].mean() and bright[:, 11].mean() > 0 > bright[:, 0].mean()


def test_split_is_per_descriptor_and_disjoint(safe_csv, ranges):
    d = eq_data.select(eq_data.read_safe_csv(safe_csv, ranges), 5)
    tr, va = eq_data.split(d, 0.2, seed=0)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == len(d.labels)
    lab = np.asarray(d.labels)
    for w, n in d.counts().items():
        n_val = int((lab[va] == w).sum())
        assert n_val == min(round(0.2 * n), n - 1) and (lab[tr] == w).sum() == n - n_val
    tr2, va2 = eq_data.split(d, 0.2, seed=0)
    np.testing.assert_array_equal(va, va2)
    with pytest.raises(AaexpError):
        eq_data.split(d, 1.0, seed=0)


def test_an_open_quote_swallows_nothing_and_skips_are_reported_by_physical_line(tmp_path, safe_csv, ranges, caplog):
    """Issue 13.4: five malformed lines at 101-105 (one with an unterminated quote) and a
    non-numeric gain at line 206; every other row must survive."""
    lines = safe_csv.read_text().splitlines()
    good = lines[0].split(",")
    bad = [
        lines[1].replace("Muddy", '"Muddy'),          # unterminated quote
        ",".join(good[:10]),                           # too few columns
        ",".join(good + ["1", "2"]),                   # too many
        lines[2].replace(",Tubby,", ',"Tub"by,'),       # text after a closing quote
        ",".join(good[:6] + ["loud"] + good[7:]),     # a frequency that is a word
    ]
    rows = lines[:100] + bad + lines[100:]
    victim = rows[205].split(",")                      # physical line 206 (original line 201)
    assert victim[5] not in ("", "notanumber") and '"' not in rows[205]
    victim[5] = "notanumber"
    rows[205] = ",".join(victim)
    path = tmp_path / "safe.csv"
    path.write_text("\n".join(rows) + "\n")

    with caplog.at_level("WARNING", logger="aaexp"):
        d = eq_data.read_safe_csv(path, ranges)
    # Independently: the clean file's descriptors, less the one row spoiled at line 206.
    with open(safe_csv, newline="") as fh:
        words = Counter(r[1].strip().lower() for r in csv.reader(fh))
    words[victim[1].strip().lower()] -= 1
    assert d.counts() == {w: n for w, n in words.items() if n}
    sel = eq_data.select(d, 5)
    assert sel.stats["rows_used"] == sum(n for n in words.values() if n >= 5)
    assert sel.stats["descriptors"] == sum(1 for n in words.values() if n >= 5) == 14
    assert sorted(d.skipped) == [101, 102, 103, 104, 105, 206]
    assert d.stats == {"rows_read": 1705, "rows_skipped": 6, "rows_out_of_range": 0}
    assert "skipped 6 malformed" in caplog.text and "101, 102, 103, 104, 105, 206" in caplog.text
