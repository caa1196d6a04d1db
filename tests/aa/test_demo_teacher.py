"""The packaged demo teacher: a small, current-format NAM WaveNet that really aliases.

Aliasing is measured here from the FFT bins of an exactly periodic window (N prime, f0 = m·fs/N):
bins that are multiples of m hold the harmonics (DC counted as one), every other bin holds
aliasing. Written out in NumPy, independently of aaexp.aa.signal.bandlimit.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from aaexp.aa.models import DEMO_TEACHER, load_model

N_PRIME = 8191  # a prime window: every aliased component lands on a non-harmonic bin


def _doc() -> dict:
    return json.loads(DEMO_TEACHER.read_text())


def test_demo_teacher_is_a_small_current_format_wavenet():
    assert DEMO_TEACHER.is_file() and DEMO_TEACHER.stat().st_size < 1_000_000
    doc = _doc()
    assert doc["version"] == "0.7.0" and doc["architecture"] == "WaveNet" and doc["sample_rate"] == 44100
    made = doc["metadata"]["aaexp_demo_teacher"]
    for key in ("seed", "drive_db", "bias", "hard_clip_level", "input_highpass_hz", "tone_lowpass_hz", "steps", "channels", "dilations"):
        assert key in made["settings"], key
    assert made["versions"]["neural-amp-modeler"].startswith("0.13")
    m = load_model(DEMO_TEACHER)
    formula = 1 + sum((k - 1) * d for lc in doc["config"]["layers"] for k, d in zip(lc["kernel_sizes"], lc["dilations"]))
    assert m.receptive_field == formula and 300 <= formula <= 2100
    assert m.sample_rate == 44100.0 and len(doc["weights"]) < 13801  # smaller than NAM "standard"


def test_demo_teacher_reads_in_neural_amp_modeler():
    """nam 0.13's own loader (what the plugins' reference implementation reads) gives the same output."""
    from nam.models import init_from_nam

    x = 0.3 * torch.randn(2, 3000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        ours = load_model(DEMO_TEACHER)(x)
        theirs = init_from_nam(_doc()).eval()(x.float(), pad_start=True).double()
    assert float((ours - theirs).abs().max()) < 2e-6 * float(theirs.abs().max())


def _alias_to_harmonic_db(y: np.ndarray, m: int) -> float:
    """10·log10(energy on non-harmonic bins / energy on harmonic bins k·m, k >= 1)."""
    power = np.abs(np.fft.rfft(y)) ** 2
    k = np.arange(len(power))
    harmonic = (k % m == 0) & (k > 0)
    alias = k % m != 0
    return float(10 * np.log10(power[alias].sum() / power[harmonic].sum()))


def test_demo_teacher_really_aliases_in_2k_8k_at_minus_20_dbfs():
    model = load_model(DEMO_TEACHER)
    fs, warm = int(model.sample_rate), 2 * model.receptive_field
    ms = np.array([round(f * N_PRIME / fs) for f in (2000, 2800, 4000, 5600, 7900)])
    f0 = ms * fs / N_PRIME
    t = np.arange(warm + 2 * N_PRIME) / fs
    x = 10 ** (-20 / 20) * np.sin(2 * np.pi * f0[:, None] * t)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).numpy()
    last, before = y[:, -N_PRIME:], y[:, -2 * N_PRIME:-N_PRIME]
    assert np.max(np.abs(last - before)) < 1e-9 * np.max(np.abs(last))  # steady state: exactly periodic
    asr = np.array([_alias_to_harmonic_db(row, int(m)) for row, m in zip(last, ms)])
    band = 10 * np.log10(np.mean(10 ** (asr / 10)))  # the band's tones pooled in power
    shown = dict(zip(np.round(f0).tolist(), np.round(asr, 1).tolist()))
    assert band > -30.0 and asr.min() > -40.0, (band, shown)


@pytest.mark.slow
def test_make_demo_teacher_script_writes_a_loadable_file(tmp_path):
    path = Path(__file__).resolve().parents[2] / "scripts" / "make_demo_teacher.py"
    spec = importlib.util.spec_from_file_location("make_demo_teacher", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "tiny.nam"
    script.main(["--steps", "2", "--batch", "2", "--segment", "256", "--dilations", "1", "2", "--out", str(out)])
    doc = json.loads(out.read_text())
    assert doc["version"] == "0.7.0" and doc["metadata"]["aaexp_demo_teacher"]["settings"]["steps"] == 2
    m = load_model(out)
    assert m.receptive_field == 1 + 2 * (1 + 2) * 2
