"""A guitar-like DI signal made by the project: a plucked phrase climbing to the top frets.

Each note is an ideal plucked string read by a magnetic pickup (modal synthesis, the exact
solution of the damped string that Karplus-Strong approximates), so every partial sits exactly
on n·f0 and nothing else is in the signal:

    x(t) = Σ_n a_n · exp(−σ_n t) · sin(2π n f0 t),   n·f0 < min(max_partial_hz, fs/2)
    a_n  = sin(nπ·pluck_position) · sin(nπ·pickup_position) / n · 1/√(1 + (n f0 / pickup_cutoff_hz)⁴)
    σ_n  = 1/decay_s + loss_per_hz2 · (n f0)²

(1/n: the pickup senses string velocity, and a plucked string's displacement modes fall as 1/n²;
the last factor is the pickup-and-cable roll-off; high partials die faster.) A note starts with
a short raised-cosine attack and ends with a raised-cosine mute before the next one, so notes
never overlap: while a note sounds, everything in the signal is a harmonic of its f0. Each note
peaks at 1 before the phrase is scaled to `peak_dbfs`. The signal is exactly bandlimited, so
anything between a note's harmonics in a model's output was made by the model (aliasing).

Every number is in conf/eval/aa.yaml under `audio_check.di`; the same config and rate give the
same samples on any machine (no randomness).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from aaexp.core.errors import AaexpError

A4_HZ, A4_MIDI = 440.0, 69


@dataclass(frozen=True)
class Note:
    """One played note: MIDI number, f0, and where it lies in the signal (seconds)."""

    midi: int
    f0_hz: float
    onset_s: float
    end_s: float          # the mute has finished here; the next note starts here
    n_partials: int

    def to_dict(self) -> dict:
        return {"midi": self.midi, "f0_hz": self.f0_hz, "onset_s": self.onset_s, "end_s": self.end_s,
                "n_partials": self.n_partials}


@dataclass
class DI:
    """The generated signal: `audio` ndarray[T] float64 at `fs`, and the notes it plays."""

    audio: np.ndarray
    fs: int
    notes: list[Note]


def phrase_notes(cfg_di, seconds: float) -> list[int]:
    """The MIDI notes played in `seconds`: the whole phrase, or evenly spaced ones that keep its top note."""
    phrase = [int(m) for m in cfg_di.phrase_midi]
    fit = int(math.floor(float(seconds) / float(cfg_di.note_s) + 1e-9))
    if fit < 1 or not phrase:
        raise AaexpError(f"audio check: {seconds:g} s holds no note of {float(cfg_di.note_s):g} s (audio_check.seconds)")
    if fit >= len(phrase):
        return phrase
    if fit == 1:
        return [phrase[-1]]
    idx = np.round(np.linspace(0, len(phrase) - 1, fit)).astype(int)
    return [phrase[i] for i in idx]


def _raised_cosine(n: int) -> np.ndarray:
    """0 → 1 over n samples."""
    return 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / max(n, 1))


def pluck(f0: float, n_samples: int, fs: int, cfg_di) -> tuple[np.ndarray, int]:
    """One note before its mute and level: (samples, number of partials)."""
    top = min(float(cfg_di.max_partial_hz), fs / 2)
    count = int(math.ceil(top / f0)) - 1         # n·f0 < top
    if count < 1:
        raise AaexpError(f"audio check: a note of {f0:.1f} Hz has no partial below {top:g} Hz")
    n = np.arange(1, count + 1, dtype=np.float64)
    f = n * f0
    amp = (np.sin(n * np.pi * float(cfg_di.pluck_position)) * np.sin(n * np.pi * float(cfg_di.pickup_position)) / n
           / np.sqrt(1.0 + (f / float(cfg_di.pickup_cutoff_hz)) ** 4))
    sigma = 1.0 / float(cfg_di.decay_s) + float(cfg_di.loss_per_hz2) * f**2
    t = np.arange(n_samples, dtype=np.float64) / fs
    x = np.zeros(n_samples)
    for a, fk, s in zip(amp, f, sigma):
        # phase from the exact cycle count mod 1: no precision lost over long notes
        x += a * np.exp(-s * t) * np.sin(2.0 * np.pi * np.remainder(fk * t, 1.0))
    return x, count


def make_di(cfg_di, fs: int, seconds: float) -> DI:
    """The phrase of `cfg_di` (conf/eval/aa.yaml audio_check.di) at `fs`, at most `seconds` long."""
    fs = int(fs)
    note_n = int(round(float(cfg_di.note_s) * fs))
    attack_n = max(1, int(round(float(cfg_di.attack_s) * fs)))
    mute_n = max(1, int(round(float(cfg_di.mute_s) * fs)))
    if attack_n + mute_n >= note_n:
        raise AaexpError("audio check: audio_check.di.note_s must be longer than attack_s + mute_s")
    midis = phrase_notes(cfg_di, seconds)
    audio = np.zeros(note_n * len(midis))
    notes = []
    env = np.ones(note_n)
    env[:attack_n] = _raised_cosine(attack_n)
    env[note_n - mute_n:] = _raised_cosine(mute_n)[::-1]
    for i, midi in enumerate(midis):
        f0 = A4_HZ * 2.0 ** ((midi - A4_MIDI) / 12.0)
        x, count = pluck(f0, note_n, fs, cfg_di)
        x *= env
        audio[i * note_n:(i + 1) * note_n] = x / np.abs(x).max()
        notes.append(Note(midi=midi, f0_hz=f0, onset_s=i * note_n / fs, end_s=(i + 1) * note_n / fs, n_partials=count))
    audio *= 10.0 ** (float(cfg_di.peak_dbfs) / 20.0)
    return DI(audio=audio, fs=fs, notes=notes)
