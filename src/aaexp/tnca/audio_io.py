"""Reading and writing audio for the TNCA study: one loader, one writer, one path resolver."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aaexp.core.errors import AaexpError

# src/aaexp/tnca/audio_io.py -> the package (src/aaexp) and the repository root above src/.
PACKAGE_DIR = Path(__file__).resolve().parents[1]
REPO_DIR = Path(__file__).resolve().parents[3]


def resolve_path(path: str | Path, what: str = "data.path") -> Path:
    """An existing file: absolute as given; relative against the cwd, then the repo, then the package."""
    p = Path(str(path)).expanduser()
    candidates = [p] if p.is_absolute() else [Path.cwd() / p, REPO_DIR / p, PACKAGE_DIR / p]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    where = ", ".join(str(c.parent) for c in candidates)
    raise AaexpError(f"{what}={path}: file not found (looked in {where}); give an existing audio file")


def load_audio(path: str | Path, sample_rate: int | None = None, mono: bool = True) -> tuple[np.ndarray, int]:
    """Read a sound file as float64 in [-1, 1]: Tensor-like ndarray[T] (mono) or ndarray[C x T].

    Mono is the mean of the channels (librosa.to_mono); resampling uses librosa.resample with its
    default soxr_hq, i.e. exactly what `librosa.load(path, sr=sample_rate, mono=True)` returns.
    """
    import soundfile as sf

    p = Path(path)
    try:
        x, sr = sf.read(str(p), always_2d=True, dtype="float64")
    except Exception as exc:  # soundfile raises several types for unreadable files
        raise AaexpError(f"cannot read audio {p}: {exc}") from exc
    x = x.T  # C x T
    if x.shape[1] == 0:
        raise AaexpError(f"audio {p} is empty")
    if mono:
        x = x.mean(axis=0)
    if sample_rate is not None and int(sample_rate) != sr:
        import librosa

        x = librosa.resample(x, orig_sr=sr, target_sr=int(sample_rate))
        sr = int(sample_rate)
    return x, int(sr)


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write float32 WAV (no int16 rounding, so measuring the file gives the numbers measured in memory)."""
    import soundfile as sf

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(p), np.asarray(audio, dtype=np.float32).T, int(sample_rate), subtype="FLOAT")
    return p


def pad_to_frame_multiple(audio: np.ndarray, hop_length: int, multiple: int | None) -> np.ndarray:
    """Zero-pad the end so len/hop rounds up to a multiple of `multiple` frames (the notebook's step).

    The notebook padded to ceil(len/hop / 8)·8·hop samples "for BigVGAN"; with librosa's centred
    framing that gives 89 frames for the violin, and BigVGAN then returned 89·256 = 22,784 samples.
    """
    if not multiple:
        return audio
    n_frames = len(audio) / hop_length
    if n_frames % multiple == 0:
        return audio
    target = int(np.ceil(n_frames / multiple)) * multiple * hop_length
    return np.pad(audio, (0, target - len(audio)))
