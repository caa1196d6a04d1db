"""Write the project's guitar-like DI (aaexp.aa.signal.di) to a WAV, to listen to it or feed it elsewhere.

    .venv/bin/python scripts/make_di.py di.wav                   # 12 s at 44.1 kHz, the audio check's phrase
    .venv/bin/python scripts/make_di.py di48.wav --rate 48000 --seconds 4

Every setting of the signal is in conf/eval/aa.yaml under audio_check.di; the file is 32-bit
float, at the level the check uses (peaks at audio_check.di.peak_dbfs). The notes played are
printed (MIDI, Hz, onset).
"""

from __future__ import annotations

import argparse

import soundfile as sf
from omegaconf import OmegaConf

from aaexp.aa.signal.di import make_di
from aaexp.core.config import CONF_DIR


def main() -> None:
    cfg = OmegaConf.load(CONF_DIR / "eval" / "aa.yaml").audio_check
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="the WAV to write")
    p.add_argument("--rate", type=int, default=44100, help="sample rate in Hz (the model's; default 44100)")
    p.add_argument("--seconds", type=float, default=float(cfg.seconds), help="phrase length (default audio_check.seconds)")
    args = p.parse_args()
    di = make_di(cfg.di, args.rate, args.seconds)
    sf.write(args.out, di.audio.astype("float32"), di.fs, subtype="FLOAT")
    for n in di.notes:
        print(f"MIDI {n.midi:3d}  {n.f0_hz:8.2f} Hz  at {n.onset_s:5.2f} s  ({n.n_partials} partials)")
    print(f"wrote {args.out}: {di.audio.size / di.fs:.2f} s at {di.fs} Hz")


if __name__ == "__main__":
    main()
