"""Numbers of the real-audio check that need no test tones, only the notes that were played.

For each note of a monophonic phrase (aaexp.aa.signal.di), one analysis segment lies inside the
note: from `skip_s` after its onset (past a model's receptive field, so the previous note has
left it) to the start of its mute. The segment is Kaiser-windowed (β `kaiser_beta`) and
transformed; every bin within ±`harmonic_halfwidth_hz` of a multiple k·f0 (k ≥ 0: DC counts as a
harmonic, as in the tone instrument) is *harmonic*, every other bin up to fs/2 is *inharmonic*.

- **inharmonic_db** of a note = 10·log10(E_inharmonic / E_harmonic): energy between the
  partials of the note being played, relative to its harmonics. A monophonic note through any
  time-invariant nonlinearity has only harmonics of its f0, so this is the aliasing (plus
  whatever the model keeps from earlier notes). The side's value is the power mean over notes.
- **above_top_db** of a note = the same ratio for the inharmonic bins above the note's highest
  harmonic below Nyquist, i.e. f > K·f0 + halfwidth with K = floor((fs/2)/f0): a region no
  harmonic of the note can reach, so whatever is there is aliased. Undefined (NaN) for a note
  whose top harmonic lies within the halfwidth of fs/2; power mean over the notes where defined.
- **esr_lp_db** (aaexp.aa.eval.audio_metrics.lowpassed_esr_db) = Σ(LP(y) − LP(y_ref))² / Σ LP(y_ref)²,
  in dB, both through one Kaiser low-pass FIR (aaexp.aa.signal.filters.lowpass_taps): how far a
  side is from the reference (the teacher) in the band a listener hears.

Every dB value is clamped at the floor (eval.floor_db), never −inf.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.signal

from aaexp.aa.signal.di import Note
from aaexp.aa.signal.filters import lowpass_taps


def _db(num: float, den: float, floor_db: float) -> float:
    if den <= 0:
        return math.nan
    return max(floor_db, 10.0 * math.log10(num / den)) if num > 0 else floor_db


def power_mean_db(values_db, floor_db: float) -> float:
    """10·log10 of the mean of 10^(v/10) over the finite values; NaN when there are none."""
    v = np.asarray([x for x in values_db if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return math.nan
    return max(floor_db, float(10.0 * np.log10(np.mean(10.0 ** (v / 10.0)))))


def segment(note: Note, fs: int, cfg_analysis, mute_s: float) -> tuple[int, int]:
    """[start, stop) samples of a note's analysis segment."""
    start = int(round((note.onset_s + float(cfg_analysis.skip_s)) * fs))
    stop = int(round((note.end_s - float(mute_s)) * fs))
    return start, stop


def note_energies(y: np.ndarray, fs: int, f0: float, start: int, stop: int, cfg_analysis) -> dict[str, float]:
    """Harmonic, inharmonic and above-top-harmonic energy of y[start:stop] for a note of `f0`."""
    seg = np.asarray(y[start:stop], dtype=np.float64)
    if seg.size < 16:
        return {"harmonic": math.nan, "inharmonic": math.nan, "above_top": math.nan}
    w = np.kaiser(seg.size, float(cfg_analysis.kaiser_beta))
    power = np.abs(np.fft.rfft(seg * w)) ** 2
    f = np.fft.rfftfreq(seg.size, 1.0 / fs)
    half = float(cfg_analysis.harmonic_halfwidth_hz)
    k = np.round(f / f0)
    harmonic = np.abs(f - k * f0) <= half
    top = math.floor((fs / 2) / f0) * f0
    above = f > top + half
    return {"harmonic": float(power[harmonic].sum()), "inharmonic": float(power[~harmonic].sum()),
            "above_top": float(power[above].sum()) if top + half < fs / 2 else math.nan}


def harmonic_measures(y: np.ndarray, fs: int, notes: list[Note], cfg_analysis, mute_s: float, floor_db: float) -> dict:
    """{'inharmonic_db', 'inharmonic_max_db', 'above_top_db', 'notes': [per-note dB values]} of one side."""
    per_note = []
    for note in notes:
        start, stop = segment(note, fs, cfg_analysis, mute_s)
        e = note_energies(y, fs, note.f0_hz, start, stop, cfg_analysis)
        per_note.append({"midi": note.midi, "f0_hz": note.f0_hz,
                         "inharmonic_db": _db(e["inharmonic"], e["harmonic"], floor_db),
                         "above_top_db": math.nan if math.isnan(e["above_top"]) else _db(e["above_top"], e["harmonic"], floor_db)})
    inh = [n["inharmonic_db"] for n in per_note]
    finite = [v for v in inh if math.isfinite(v)]
    return {"inharmonic_db": power_mean_db(inh, floor_db), "inharmonic_max_db": max(finite) if finite else math.nan,
            "above_top_db": power_mean_db([n["above_top_db"] for n in per_note], floor_db), "notes": per_note}


def lowpassed_esr_db(y: np.ndarray, ref: np.ndarray, fs: int, cfg_lowpass, floor_db: float) -> float:
    """ESR of y against ref after the same low-pass, in dB (see the module docstring)."""
    taps = lowpass_taps(fs, float(cfg_lowpass.passband_hz), float(cfg_lowpass.stopband_hz), float(cfg_lowpass.attenuation_db))
    a = scipy.signal.lfilter(taps, 1.0, np.asarray(y, dtype=np.float64))
    b = scipy.signal.lfilter(taps, 1.0, np.asarray(ref, dtype=np.float64))
    return _db(float(np.sum((a - b) ** 2)), float(np.sum(b**2)), floor_db)


def level_dbfs(y: np.ndarray, floor_db: float) -> dict[str, float]:
    """Peak and RMS of a side in dB re full scale (1.0)."""
    y = np.asarray(y, dtype=np.float64)
    peak, rms = float(np.abs(y).max(initial=0.0)), float(np.sqrt(np.mean(y**2))) if y.size else 0.0
    return {"peak_dbfs": max(floor_db, 20 * math.log10(peak)) if peak > 0 else floor_db,
            "rms_dbfs": max(floor_db, 20 * math.log10(rms)) if rms > 0 else floor_db}
