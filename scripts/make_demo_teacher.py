"""Train the packaged demo teacher: a small NAM WaveNet of a hard, aliasing-prone distortion.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/make_demo_teacher.py
    # ~5 min of one idle CPU core (1,500 steps); 31 min wall on a heavily shared 2-core machine

The imitated circuit (computed at the model's own rate, so its aliasing is part of the target):
input high-pass -> drive -> asymmetric clipper (soft tanh above, hard clip below, with a bias) ->
output low-pass ("tone") -> output level. Training signals: sine tones at f0 uniform in MIDI
21-127 and random levels, plus noise bursts and log chirps. The network is neural-amp-modeler's
own WaveNet (2,926 weights against NAM "standard"'s 13,801; receptive field 1,021 samples), written with
nam's own exporter, i.e. the current .nam format (0.7.0 for neural-amp-modeler 0.13). Every
setting below is an argparse default and is recorded in the file's metadata
(`metadata.aaexp_demo_teacher`), together with the training result.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.signal
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "aaexp" / "assets" / "demo_teacher.nam"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-rate", type=int, default=44100)
    # the circuit
    p.add_argument("--input-highpass-hz", type=float, default=120.0, help="1st-order Butterworth before the clipper")
    p.add_argument("--drive-db", type=float, default=40.0, help="gain into the clipper")
    p.add_argument("--bias", type=float, default=0.3, help="offset into the clipper (asymmetry, even harmonics)")
    p.add_argument("--hard-clip-level", type=float, default=0.5, help="the negative half clips hard at -this")
    p.add_argument("--tone-lowpass-hz", type=float, default=10000.0, help="2nd-order Butterworth after the clipper")
    p.add_argument("--output-gain-db", type=float, default=-6.0)
    # the network (layer arrays: channels, dilations; kernel 3, tanh, as NAM's own presets)
    p.add_argument("--channels", type=int, nargs=2, default=[8, 4])
    p.add_argument("--dilations", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64, 128])
    p.add_argument("--kernel-size", type=int, default=3)
    # training
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--segment", type=int, default=4096, help="loss samples per item (after a receptive-field warm-up)")
    p.add_argument("--lr", type=float, default=4e-3)
    p.add_argument("--lr-final", type=float, default=2e-4, help="exponential decay to this by the last step")
    p.add_argument("--midi-min", type=float, default=21.0)
    p.add_argument("--midi-max", type=float, default=127.0)
    p.add_argument("--level-db-min", type=float, default=-50.0, help="training levels uniform in dBFS")
    p.add_argument("--level-db-max", type=float, default=0.0)
    p.add_argument("--frac-noise", type=float, default=0.15)
    p.add_argument("--frac-chirp", type=float, default=0.15)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core machine)")
    return p.parse_args(argv)


class Circuit:
    """The imitated distortion, naive rate: Tensor-free NumPy, [B x T] -> [B x T]."""

    def __init__(self, a: argparse.Namespace):
        fs = a.sample_rate
        self.hp = scipy.signal.butter(1, a.input_highpass_hz, "highpass", fs=fs, output="sos")
        self.lp = scipy.signal.butter(2, a.tone_lowpass_hz, "lowpass", fs=fs, output="sos")
        self.drive = 10 ** (a.drive_db / 20)
        self.bias, self.hard = a.bias, a.hard_clip_level
        self.out_gain = 10 ** (a.output_gain_db / 20)
        self.rest = self._clip(np.array(self.bias))  # the clipper's output at silence, removed

    def _clip(self, u: np.ndarray) -> np.ndarray:
        return np.where(u > 0, np.tanh(u), np.maximum(u, -self.hard))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        u = self.drive * scipy.signal.sosfilt(self.hp, x, axis=-1) + self.bias
        y = self._clip(u) - self.rest
        return self.out_gain * scipy.signal.sosfilt(self.lp, y, axis=-1)


def make_inputs(rng: np.random.Generator, a: argparse.Namespace, n: int, length: int) -> np.ndarray:
    """Training inputs Tensor[n x length]: sine tones, noise bursts and log chirps at random levels."""
    fs = a.sample_rate
    t = np.arange(length) / fs
    out = np.empty((n, length))
    kinds = rng.choice(3, size=n, p=[1 - a.frac_noise - a.frac_chirp, a.frac_noise, a.frac_chirp])
    levels = 10 ** (rng.uniform(a.level_db_min, a.level_db_max, size=n) / 20)
    for i, kind in enumerate(kinds):
        if kind == 0:
            f0 = 440.0 * 2 ** ((rng.uniform(a.midi_min, a.midi_max) - 69) / 12)
            out[i] = np.sin(2 * np.pi * f0 * t + rng.uniform(0, 2 * np.pi))
        elif kind == 1:  # white noise through a random low-pass (200 Hz .. 20 kHz)
            fc = np.exp(rng.uniform(np.log(200.0), np.log(min(20000.0, 0.45 * fs))))
            w = scipy.signal.sosfilt(scipy.signal.butter(1, fc, fs=fs, output="sos"), rng.standard_normal(length))
            out[i] = w / (np.max(np.abs(w)) + 1e-12)
        else:
            f1, f2 = np.exp(rng.uniform(np.log(20), np.log(0.45 * fs), size=2))
            out[i] = scipy.signal.chirp(t, f1, t[-1], f2, method="logarithmic", phi=rng.uniform(0, 360))
    return levels[:, None] * out


def build_wavenet(a: argparse.Namespace):
    """neural-amp-modeler's WaveNet with two layer arrays, NAM-preset style."""
    from nam.models import WaveNet

    c1, c2 = a.channels
    common = {"condition_size": 1, "kernel_size": a.kernel_size, "dilations": list(a.dilations), "activation": "Tanh"}
    layers = [
        {"input_size": 1, "channels": c1, "head": {"out_channels": c2, "kernel_size": 1, "bias": False}, **common},
        {"input_size": c1, "channels": c2, "head": {"out_channels": 1, "kernel_size": 1, "bias": True}, **common},
    ]
    return WaveNet.init_from_config({"layers_configs": layers, "head": None, "head_scale": 0.02, "sample_rate": a.sample_rate})


def esr_db(y: torch.Tensor, t: torch.Tensor) -> float:
    return float(10 * torch.log10(((y - t) ** 2).sum() / (t ** 2).sum()))


def main(argv: list[str] | None = None) -> dict:
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    circuit = Circuit(a)
    model = build_wavenet(a)
    rf = model.receptive_field
    warm = rf - 1 + 256  # extra samples so the circuit's filters have settled where the loss starts
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    gamma = (a.lr_final / a.lr) ** (1 / max(1, a.steps - 1))
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)

    # validation: tones across the aliasing-relevant range at -20 dBFS, plus a chirp
    val_rng = np.random.default_rng(a.seed + 1)
    x_val = make_inputs(val_rng, argparse.Namespace(**{**vars(a), "level_db_min": -20.0, "level_db_max": -20.0,
                                                       "frac_noise": 0.0, "frac_chirp": 0.25}), 16, warm + a.segment)
    y_val = torch.from_numpy(circuit(x_val)[:, warm:]).float()
    x_val_t = torch.from_numpy(x_val[:, warm - (rf - 1):]).float()

    t0, log_every, history = time.time(), max(1, a.steps // 20), []
    model.train()
    for step in range(a.steps):
        x = make_inputs(rng, a, a.batch, warm + a.segment)
        target = torch.from_numpy(circuit(x)[:, warm:]).float()
        y = model(torch.from_numpy(x[:, warm - (rf - 1):]).float(), pad_start=False)
        loss = ((y - target) ** 2).sum() / (target ** 2).sum().clamp_min(1e-12)  # ESR of the batch
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % log_every == 0 or step == a.steps - 1:
            model.eval()
            with torch.no_grad():
                val = esr_db(model(x_val_t, pad_start=False), y_val)
            model.train()
            history.append({"step": step, "train_esr_db": round(10 * math.log10(float(loss.detach())), 2), "val_esr_db": round(val, 2)})
            print(f"step {step:5d}  train ESR {history[-1]['train_esr_db']:7.2f} dB  val ESR {val:7.2f} dB  "
                  f"{time.time() - t0:6.0f} s", flush=True)
    model.eval()

    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items() if k not in ("out", "threads")}
    result = {"val_esr_db": history[-1]["val_esr_db"], "train_seconds": round(time.time() - t0, 1),
              "receptive_field": rf, "n_weights": int(sum(p.numel() for p in model.parameters())) + 1}
    from nam import __version__ as nam_version
    from nam.models.metadata import GearType, ToneType, UserMetadata

    meta = UserMetadata(name="aaexp demo teacher (aliasing fuzz)", modeled_by="aaexp scripts/make_demo_teacher.py",
                        gear_type=GearType.PEDAL, tone_type=ToneType.FUZZ)
    other = {"aaexp_demo_teacher": {"settings": settings, "result": result, "history": history,
                                    "versions": {"torch": torch.__version__, "neural-amp-modeler": nam_version}}}
    with tempfile.TemporaryDirectory() as tmp:
        model.export(Path(tmp), basename="demo_teacher", user_metadata=meta, other_metadata=other)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(tmp) / "demo_teacher.nam", a.out)
    size = a.out.stat().st_size
    print(json.dumps({"out": str(a.out), "bytes": size, **result}))
    return {"out": a.out, "bytes": size, **result}


if __name__ == "__main__":
    main(sys.argv[1:])
