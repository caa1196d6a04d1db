"""`aaexp eval --audio out.wav [--reference target.wav]`: the TNCA audio measures of a file.

Single-file measures (duration, rate, peaks, RMS, centroid) for each file; with a reference also
log-spectral distance, multi-resolution STFT distance and mel-cepstral distance. Definitions:
src/aaexp/tnca/measures.py and conf/eval/tnca.yaml.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf

from aaexp.core import undefined
from aaexp.core.config import CONF_DIR
from aaexp.tnca import measures
from aaexp.tnca.audio_io import load_audio, resolve_path
from aaexp.tracking.eval_run import eval_tracker

DESCRIPTION = "audio measures of a generated file against a reference (TNCA)"


def add_arguments(group) -> None:
    group.add_argument("--audio", metavar="WAV", help="audio file to measure (e.g. a run's grown.wav)")
    group.add_argument("--reference", metavar="WAV", help="reference file for the distances (e.g. the violin target)")
    group.add_argument("--compare-rate", type=int, metavar="HZ",
                       help="sample rate for the distances (default: the --audio file's; the reference is resampled)")


def claims(args) -> bool:
    return getattr(args, "audio", None) is not None


def _figure(audio, sr, reference, ref_sr):
    """Log-magnitude spectrograms of both files on one scale, for looking rather than reading."""
    import librosa
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    items = [("audio", measures.mono(audio), sr)] + ([("reference", measures.mono(reference), ref_sr)] if reference is not None else [])
    fig, axes = plt.subplots(1, len(items), figsize=(6 * len(items), 4), squeeze=False, constrained_layout=True)
    for ax, (name, x, rate) in zip(axes[0], items):
        db = librosa.amplitude_to_db(np.abs(librosa.stft(x, n_fft=2048, hop_length=512)), ref=1.0, top_db=100)
        im = ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=20,
                       extent=[0, len(x) / rate, 0, rate / 2000])
        ax.set(title=f"{name} ({rate} Hz)", xlabel="time (s)", ylabel="kHz")
    fig.colorbar(im, ax=axes[0].tolist(), label="dB (re |X| = 1)")
    return fig


def run(args) -> int:
    cfg = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "eval" / "tnca.yaml"), resolve=True)
    if args.compare_rate:
        cfg["compare"]["sample_rate"] = int(args.compare_rate)
    a_path = resolve_path(args.audio, "--audio")
    audio, sr = load_audio(a_path, None, mono=False)
    reference, ref_sr, r_path = None, None, None
    if args.reference:
        r_path = resolve_path(args.reference, "--reference")
        reference, ref_sr = load_audio(r_path, None, mono=False)
    result = measures.measure(audio, sr, reference, ref_sr, cfg)
    print(f"audio: {a_path}" + (f"\nreference: {r_path}" if r_path else ""))
    print(measures.table(result))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tnca_measures.md").write_text(measures.table(result) + "\n")
    fig = _figure(audio, sr, reference, ref_sr)
    fig.savefig(out / "tnca_spectrograms.png", dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"audio": str(a_path), "reference": str(r_path) if r_path else None, **result}, indent=2))
    with eval_tracker(args, "tnca", f"eval {a_path.name}" + (f" vs {r_path.name}" if r_path else "")) as tracker:
        if tracker is not None:
            tracker.log_params({"audio": str(a_path), "reference": str(r_path) if r_path else ""})
            tracker.log_metrics(result)
            tracker.set_tags(undefined.tags(measures.undefined_reasons(result)))
            tracker.log_artifact(out / "tnca_measures.md", "eval")
            tracker.log_artifact(out / "tnca_spectrograms.png", "eval")
    return 0
