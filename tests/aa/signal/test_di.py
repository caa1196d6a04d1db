"""The generated guitar DI: deterministic, the requested notes, bandlimited, at its level."""

import numpy as np
import pytest
from omegaconf import OmegaConf

from aaexp.aa.signal.di import make_di, phrase_notes
from aaexp.core.config import CONF_DIR

FS = 44100


@pytest.fixture(scope="module")
def cfg():
    return OmegaConf.load(CONF_DIR / "eval" / "aa.yaml").audio_check


@pytest.fixture(scope="module")
def di(cfg):
    return make_di(cfg.di, FS, float(cfg.seconds))


def test_the_phrase_is_deterministic_and_as_long_as_configured(cfg, di):
    again = make_di(cfg.di, FS, float(cfg.seconds))
    assert np.array_equal(again.audio, di.audio)
    n = len(cfg.di.phrase_midi)
    assert len(di.notes) == n and di.audio.size == n * round(cfg.di.note_s * FS)
    assert 10.0 <= di.audio.size / FS <= 20.0
    assert np.abs(di.audio).max() == pytest.approx(10 ** (cfg.di.peak_dbfs / 20), rel=1e-12)


def test_each_note_sounds_at_its_requested_pitch(cfg, di):
    """Independent pitch estimate: librosa's YIN, median over the note's steady part, within 5 cents."""
    import librosa

    for note in di.notes:
        seg = di.audio[round((note.onset_s + 0.05) * FS):round((note.end_s - cfg.di.mute_s) * FS)]
        f0 = librosa.yin(seg, fmin=60.0, fmax=2000.0, sr=FS, frame_length=4096)
        want = 440.0 * 2 ** ((note.midi - 69) / 12)
        cents = 1200 * np.log2(np.median(f0) / want)
        assert abs(cents) < 5.0, (note.midi, cents)


def test_the_di_is_bandlimited_below_max_partial_hz(cfg, di):
    """Inside every note, the spectrum above max_partial_hz (plus a window's main lobe) is empty."""
    for note in di.notes:
        seg = di.audio[round((note.onset_s + 0.05) * FS):round((note.end_s - cfg.di.mute_s) * FS)]
        power = np.abs(np.fft.rfft(seg * np.kaiser(seg.size, 20.0))) ** 2
        f = np.fft.rfftfreq(seg.size, 1 / FS)
        above = power[f > cfg.di.max_partial_hz + 50].sum() / power.sum()
        assert 10 * np.log10(above + 1e-300) < -150, note.midi


def test_a_shorter_check_keeps_the_top_fret(cfg):
    assert phrase_notes(cfg.di, 1.5) == [40, 88]
    assert phrase_notes(cfg.di, 0.75) == [88]
    short = make_di(cfg.di, 48000, 3.0)
    assert [n.midi for n in short.notes] == [40, 64, 76, 88] and short.audio.size == 4 * 36000


def test_the_phrase_avoids_notes_whose_aliases_hide_on_their_harmonics(cfg):
    """Brute force at 44.1 kHz: above the open A string, the aliases of every note (folded once or twice,
    at fs, 2fs and 4fs) land farther than the analysis halfwidth from its harmonics, so the check sees them."""
    half = float(cfg.analysis.harmonic_halfwidth_hz)
    for midi in cfg.di.phrase_midi:
        if midi <= 45:
            continue
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        for rate in (FS, 2 * FS, 4 * FS):
            for n in range(1, 200):                      # harmonic n·f0 above rate/2 folds to |j·rate − n·f0|
                for j in (1, 2):
                    alias = abs(j * rate - n * f0)
                    if alias < rate / 2 and alias < FS / 2:
                        k = round(alias / f0)
                        assert abs(alias - k * f0) > half, (midi, rate, n, j)
