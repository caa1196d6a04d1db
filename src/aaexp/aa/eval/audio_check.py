"""The real-audio check: teacher, student and teacher ×k on a guitar-like DI, to listen to and measure.

`run_audio_check(teacher, student, cfg_eval, device)` drives every side with the project's DI
(aaexp.aa.signal.di, `eval.audio_check` in conf/eval/aa.yaml) or a user's recording, and returns
an AudioCheck that writes, under one folder (`<eval folder>/audio_check/`, MLflow
`eval/audio_check/`):

- `di.wav` (the input), `teacher.wav`, `student.wav`, `teacher_x2.wav` (one per factor k):
  32-bit float WAVs at the model rate, nothing normalised;
- `spectrograms.png`: every side side by side, one dB scale (dB re full scale);
- `audio_check.json`: per side the numbers of aaexp.aa.eval.audio_metrics (inharmonic energy,
  energy above the top harmonic, ESR after a shared low-pass against the teacher, levels, wall
  time), per note, and what was played.

MLflow metrics `audio/<side>/<name>`. With a user's recording the notes are unknown, so the
harmonic measures are undefined (null in the JSON, not logged); the ESR and the files remain.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from aaexp.aa.eval import audio_metrics
from aaexp.aa.eval import response as eval_response
from aaexp.aa.signal.di import make_di
from aaexp.core.errors import AaexpError

FOLDER = "audio_check"
METRICS = ("inharmonic_db", "inharmonic_max_db", "above_top_db", "esr_lp_db", "peak_dbfs", "rms_dbfs", "cost_vs_teacher")


def side_name(k: int) -> str:
    """File and metric name of the teacher run at k·fs."""
    return f"teacher_x{k}"


def read_di(path: str | Path, fs: int) -> np.ndarray:
    """A user's recording as float64 mono at `fs` (channels averaged; another rate resampled, polyphase)."""
    import soundfile as sf
    from scipy.signal import resample_poly

    try:
        x, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except (RuntimeError, OSError) as exc:   # soundfile's LibsndfileError is a RuntimeError
        raise AaexpError(f"{path}: cannot read it as audio ({str(exc).splitlines()[0]})") from exc
    x = x.mean(axis=1)
    if x.size == 0:
        raise AaexpError(f"{path}: no samples")
    if int(rate) != int(fs):
        ratio = Fraction(int(fs), int(rate)).limit_denominator(1000)
        x = resample_poly(x, ratio.numerator, ratio.denominator)
    return x


def _run(model, x: np.ndarray, device, dtype) -> tuple[np.ndarray, float]:
    """(output float64, wall seconds) of one side on the whole signal; zero input after the end feeds a look-ahead."""
    t0 = time.perf_counter()
    prepared = eval_response.prepare_model(model, device, dtype)
    tail = int(getattr(prepared, "lookahead", 0))
    xt = torch.from_numpy(np.concatenate([x, np.zeros(tail)])).to(device=device, dtype=dtype)[None]
    y = eval_response.forward(prepared, xt)[0, : x.size].to("cpu", torch.float64).numpy()
    return y, time.perf_counter() - t0


def spectrogram_dbfs(y: np.ndarray, n_fft: int, hop: int, window: str) -> np.ndarray:
    """ndarray[F x frames]: STFT power in dB re a full-scale sine's peak bin."""
    from scipy.signal import stft

    _, _, z = stft(y, window=window, nperseg=n_fft, noverlap=n_fft - hop, boundary="zeros", padded=True, scaling="spectrum")
    # scipy's "spectrum" scaling divides by Σw, so a full-scale sine peaks at 0.5
    return 20.0 * np.log10(np.abs(z) / 0.5 + 1e-12)


@dataclass
class AudioCheck:
    """The outputs of every side, the numbers, and how they were made."""

    fs: int
    signals: dict[str, np.ndarray]          # 'di', 'teacher', 'student', 'teacher_x2', ...
    sides: dict[str, dict]                  # per side: the numbers (NaN: undefined)
    meta: dict
    notes: list[dict] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, float]:
        """{'audio/<side>/<name>': value} for MLflow, finite values only."""
        out = {}
        for side, vals in self.sides.items():
            for key in METRICS:
                v = vals.get(key)
                if v is not None and math.isfinite(v):
                    out[f"audio/{side}/{key}"] = float(v)
        return out

    def to_dict(self) -> dict:
        def clean(v):
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v

        return clean({"meta": self.meta, "sides": self.sides, "notes": self.notes})

    def format_table(self) -> str:
        def f(v):
            return "n/a" if v is None or not math.isfinite(v) else f"{v:.1f}"

        lines = [f"real-audio check ({self.meta['source']}, {self.meta['seconds']:.1f} s at {self.fs} Hz)",
                 f"{'side':<12} {'inharmonic dB':>14} {'above top dB':>13} {'ESR-LP dB':>10} {'peak dBFS':>10} {'run s':>7}"]
        for side, v in self.sides.items():
            lines.append(f"{side:<12} {f(v['inharmonic_db']):>14} {f(v['above_top_db']):>13} {f(v['esr_lp_db']):>10} "
                         f"{f(v['peak_dbfs']):>10} {v['run_s']:>7.2f}")
        lines.append(f"ESR-LP: against the teacher after a {self.meta['lowpass']['passband_hz']:g} Hz low-pass; "
                     "inharmonic / above top: energy between / above the played notes' harmonics, re the harmonics")
        return "\n".join(lines)

    def figure(self, cfg_spec):
        from aaexp.aa.eval.plots import audio_spectrograms

        n_fft, hop = int(cfg_spec.n_fft), int(cfg_spec.hop)
        specs = {side: spectrogram_dbfs(y, n_fft, hop, str(cfg_spec.window)) for side, y in self.signals.items()}
        return audio_spectrograms(specs, self.fs, hop, float(cfg_spec.dynamic_range_db))

    def write(self, out_dir: str | Path, cfg_spec) -> list[Path]:
        """The WAVs, audio_check.json and spectrograms.png under out_dir; returns the paths (picture last)."""
        import soundfile as sf

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for side, y in self.signals.items():
            p = out_dir / f"{side}.wav"
            sf.write(str(p), y.astype(np.float32), self.fs, subtype="FLOAT")
            paths.append(p)
        p = out_dir / "audio_check.json"
        p.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")
        paths.append(p)
        p = out_dir / "spectrograms.png"
        self.figure(cfg_spec).savefig(p, dpi=110)
        paths.append(p)
        return paths

    def log_to(self, tracker, out_dir: str | Path, cfg_spec) -> list[Path]:
        """Write the files; with a tracker, log the metrics first, then the files under eval/audio_check."""
        if tracker is not None:
            tracker.log_metrics(self.metrics)
        paths = self.write(out_dir, cfg_spec)
        if tracker is not None:
            for p in paths:
                tracker.log_artifact(p, f"eval/{FOLDER}")
        return paths


def run_audio_check(teacher, student, cfg_eval, device, di_file: str | Path | None = None,
                    seconds: float | None = None, oversample=None) -> AudioCheck:
    """Drive teacher, student (may be None) and teacher ×k with the DI; measure every side (see module docstring).

    `seconds` (default `audio_check.seconds`) bounds the generated phrase; `oversample` (default
    `audio_check.oversample`) lists the factors k; `di_file` replaces the phrase by a recording.
    """
    from aaexp.aa.eval.oversample import Oversampled

    cfg = cfg_eval.audio_check
    fs = int(round(float(teacher.sample_rate)))
    floor = float(cfg_eval.floor_db)
    dtype = getattr(torch, str(cfg_eval.dtype))
    factors = sorted({int(k) for k in (cfg.oversample if oversample is None else oversample)})
    if di_file is None:
        di = make_di(cfg.di, fs, float(cfg.seconds if seconds is None else seconds))
        x, notes, source = di.audio, di.notes, "generated DI (aaexp.aa.signal.di)"
    else:
        x, notes, source = read_di(di_file, fs), [], str(di_file)
    models = {"teacher": teacher, **({"student": student} if student is not None else {}),
              **{side_name(k): Oversampled(teacher, k) for k in factors}}
    signals, run_s = {"di": x}, {"di": 0.0}
    for side, model in models.items():
        signals[side], run_s[side] = _run(model, x, device, dtype)

    sides, by_note = {}, {}
    for side, y in signals.items():
        vals = dict(audio_metrics.level_dbfs(y, floor), run_s=run_s[side])
        if notes:
            h = audio_metrics.harmonic_measures(y, fs, notes, cfg.analysis, float(cfg.di.mute_s), floor)
            by_note[side] = h.pop("notes")
            vals.update(h)
        else:
            vals.update(inharmonic_db=math.nan, inharmonic_max_db=math.nan, above_top_db=math.nan)
        vals["esr_lp_db"] = (math.nan if side in ("di", "teacher")
                             else audio_metrics.lowpassed_esr_db(y, signals["teacher"], fs, cfg.lowpass, floor))
        if side.startswith("teacher_x"):
            vals["cost_vs_teacher"] = run_s[side] / max(run_s["teacher"], 1e-12)
        sides[side] = vals
    per_note = [dict(n.to_dict(), **{side: {k: rows[i][k] for k in ("inharmonic_db", "above_top_db")}
                                     for side, rows in by_note.items()})
                for i, n in enumerate(notes)]
    meta = {"fs": fs, "seconds": x.size / fs, "source": source, "oversample": factors, "floor_db": floor,
            "dtype": str(cfg_eval.dtype), "lowpass": dict(cfg.lowpass), "analysis": dict(cfg.analysis),
            "files": [f"{s}.wav" for s in signals] + ["spectrograms.png", "audio_check.json"]}
    if not notes:
        meta["undefined"] = {"inharmonic_db": "the notes of a recording are not known",
                             "above_top_db": "the notes of a recording are not known"}
    return AudioCheck(fs=fs, signals=signals, sides=sides, meta=meta, notes=per_note)
