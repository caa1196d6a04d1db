"""The real-audio check's numbers against closed forms: inharmonic energy, energy above the top harmonic, low-passed ESR."""

import math

import numpy as np
import pytest
from omegaconf import OmegaConf

from aaexp.aa.eval import audio_metrics
from aaexp.aa.signal.di import Note, make_di
from aaexp.core.config import CONF_DIR

FS = 44100
FLOOR = -300.0          # far below anything measured here, so nothing is clamped
E6 = 440.0 * 2 ** (19 / 12)   # 1318.5 Hz: its top harmonic below Nyquist is the 16th, 21,096 Hz


@pytest.fixture(scope="module")
def cfg():
    return OmegaConf.load(CONF_DIR / "eval" / "aa.yaml").audio_check


def two_notes(note_s: float = 0.6) -> list[Note]:
    return [Note(midi=45, f0_hz=110.0, onset_s=0.0, end_s=note_s, n_partials=0),
            Note(midi=88, f0_hz=E6, onset_s=note_s, end_s=2 * note_s, n_partials=0)]


def partials(notes, amps_of, extra=None):
    """Constant-amplitude harmonic sums, one per note (amplitudes amps_of(f0)); `extra[i]` = (amp, Hz) added in note i."""
    t_all = np.arange(round(notes[-1].end_s * FS)) / FS
    y = np.zeros_like(t_all)
    for i, n in enumerate(notes):
        sel = (t_all >= n.onset_s) & (t_all < n.end_s)
        t = t_all[sel]
        amps = amps_of(n.f0_hz)
        seg = sum(a * np.sin(2 * np.pi * (k + 1) * n.f0_hz * t + 0.3 * k) for k, a in enumerate(amps))
        if extra and extra[i]:
            b, f = extra[i]
            seg = seg + b * np.sin(2 * np.pi * f * t + 1.0)
        y[sel] = seg
    return y


def amps_below_nyquist(f0):
    k = np.arange(1, int((FS / 2 - 100) // f0) + 1)
    return 0.5 / k


def test_a_bandlimited_sum_of_the_played_partials_has_no_inharmonic_energy(cfg):
    notes = two_notes()
    y = partials(notes, amps_below_nyquist)
    got = audio_metrics.harmonic_measures(y, FS, notes, cfg.analysis, cfg.di.mute_s, FLOOR)
    assert got["inharmonic_db"] < -150 and got["above_top_db"] < -150, got
    di = make_di(cfg.di, FS, 3.0)   # the generated DI: decaying partials, attack and mute
    got = audio_metrics.harmonic_measures(di.audio, FS, di.notes, cfg.analysis, cfg.di.mute_s, FLOOR)
    assert got["inharmonic_max_db"] < -150, got


def test_an_added_inharmonic_sine_reads_its_power_ratio(cfg):
    """Sine b between partials in note 1, another above the top harmonic in note 2: 10·log10(b² / Σa²)."""
    notes = two_notes()
    a1, a2 = amps_below_nyquist(110.0), amps_below_nyquist(E6)
    b1, b2 = 0.01, 0.003
    top2 = math.floor((FS / 2) / E6) * E6
    assert top2 == pytest.approx(16 * E6)
    y = partials(notes, amps_below_nyquist, extra=[(b1, 110.0 * 7.5), (b2, top2 + 500.0)])
    got = audio_metrics.harmonic_measures(y, FS, notes, cfg.analysis, cfg.di.mute_s, FLOOR)
    want1 = 10 * math.log10(b1**2 / np.sum(a1**2))
    want2 = 10 * math.log10(b2**2 / np.sum(a2**2))
    n1, n2 = got["notes"]
    assert n1["inharmonic_db"] == pytest.approx(want1, abs=0.01)
    assert n2["inharmonic_db"] == pytest.approx(want2, abs=0.01)
    assert n2["above_top_db"] == pytest.approx(want2, abs=0.01)       # it lies above E6's top harmonic
    assert n1["above_top_db"] < -150                                   # note 1's sine is between its partials
    assert got["inharmonic_db"] == pytest.approx(10 * math.log10((10 ** (want1 / 10) + 10 ** (want2 / 10)) / 2), abs=0.01)
    assert got["inharmonic_max_db"] == pytest.approx(max(want1, want2), abs=0.01)


def test_lowpassed_esr_is_zero_for_a_copy_and_the_closed_form_for_a_scaled_one(cfg):
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(FS // 2) * 0.1
    assert audio_metrics.lowpassed_esr_db(ref, ref, FS, cfg.lowpass, -120.0) == -120.0
    for g in (0.9, 1.5, -1.0):
        got = audio_metrics.lowpassed_esr_db(g * ref, ref, FS, cfg.lowpass, FLOOR)
        assert got == pytest.approx(20 * math.log10(abs(g - 1)), abs=1e-9)
    # a difference only above the stop band is attenuated by the filter's stop-band depth (80 dB)
    t = np.arange(ref.size) / FS
    tone = np.sin(2 * np.pi * 1000 * t)
    hiss = 0.5 * np.sin(2 * np.pi * 19000 * t) * np.hanning(t.size)   # faded in and out: no broadband onset
    unfiltered = 10 * math.log10(np.sum(hiss**2) / np.sum(tone**2))
    got = audio_metrics.lowpassed_esr_db(tone + hiss, tone, FS, cfg.lowpass, FLOOR)
    assert got < unfiltered - cfg.lowpass.attenuation_db + 1.0
