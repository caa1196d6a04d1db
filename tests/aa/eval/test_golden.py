"""Golden files: `aaexp eval` on the real jhm8 pairs against the committed, earlier verified results.

experiments/aa/eval_jhm8_{tcn,lstm}.json were written by `aaexp eval` when the instrument was checked
against independent references (NMR against the MATLAB original, tone by tone against an independent
evaluation). Any change to the instrument — grid, warm-up, bandlimiting, NMR, aggregation — shows
here as a per-tone difference.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from aaexp.commands import cli

REPO = Path(__file__).resolve().parents[3]
PAIRS = {"tcn": ("jhm8_tcn_teacher.nam", "jhm8_tcn_student.nam"), "lstm": ("jhm8_lstm_teacher.json", "jhm8_lstm_student.json")}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(PAIRS))
def test_aaexp_eval_reproduces_the_committed_jhm8_results(kind, shared_data, tmp_path):
    golden = json.loads((REPO / "experiments" / "aa" / f"eval_jhm8_{kind}.json").read_text())
    teacher, student = (shared_data / "nam" / f for f in PAIRS[kind])
    out = tmp_path / "r.json"
    rc = cli.main(["eval", "--teacher", str(teacher), "--student", str(student), "--model-rate", "44100",
                   "--no-log", "--no-plots", "--out", str(tmp_path), "--json", str(out)])
    assert rc == 0
    got = json.loads(out.read_text())
    assert len(got["tones"]) == len(golden["tones"]) == 50
    for g, w in zip(got["tones"], golden["tones"]):
        assert g["f0_hz"] == pytest.approx(w["f0_hz"], abs=1e-9) and g["m"] == w["m"]
        for model in ("teacher", "student"):
            for key in ("nmr_s_db", "hesr_r_db"):
                a, b = g[model][key], w[model][key]
                assert (a is None) == (b is None), (g["f0_hz"], model, key)
                if a is not None:
                    assert abs(a - b) <= 1e-6, (g["f0_hz"], model, key, a, b)
            assert g[model]["warmup_s"] == w[model]["warmup_s"]
    rows = {(r["model"], r["band"]): r for r in got["rows"]}
    for r in golden["rows"]:
        for key in ("nmr_s_db", "hesr_r_db"):
            a, b = rows[r["model"], r["band"]][key], r[key]
            assert (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, abs_tol=1e-6))
