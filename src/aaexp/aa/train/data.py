"""Sine-tone data sets and their exact bandlimited teacher targets, cached on disk.

A tone runs for a warm-up (discarded) and then an N-sample loss window (N prime, or a power of two
with `window_kind=pow2`), f0 snapped to m·fs/N, so the teacher's output over the window is exactly
periodic. Its bandlimited version is
fully described by the rfft coefficients at the harmonic bins k·m (DC included); the cache keeps
only those (a few MB for 1,600 tones instead of 0.5 GB of waveforms) and `ToneSet.targets`
rebuilds a batch of targets with one irfft.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterator

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from aaexp.aa.signal.bandlimit import harmonic_mask, harmonic_part
from aaexp.aa.signal.tones import analysis_length, midi_to_hz, sine_batch, snap_f0
from aaexp.core.errors import AaexpError
from aaexp.core.files import atomic_save, load_safely
from aaexp.core.progress import bar

CACHE_VERSION = 1  # bump when the cached layout or the target computation changes
DTYPES = {"float64": torch.float64, "float32": torch.float32}


@dataclass
class ToneSet:
    """Tones (f0, level, phase) plus the teacher's bandlimited response to each.

    f0, amp, phase: Tensor[B] (float64); m: LongTensor[B]; coef: complex Tensor[sum_b K_b], the
    teacher output's rfft at the harmonic bins of each tone in turn; offsets: LongTensor[B+1]
    (tone b's coefficients are coef[offsets[b]:offsets[b+1]]).
    """

    f0: Tensor
    m: Tensor
    amp: Tensor
    phase: Tensor
    coef: Tensor
    offsets: Tensor
    fs: float
    n_warmup: int
    n_window: int
    max_snap_cents: float = 0.0  # largest |f0 change| from snapping to a periodic frequency

    def __len__(self) -> int:
        return int(self.f0.shape[0])

    @property
    def n_total(self) -> int:
        return self.n_warmup + self.n_window

    def inputs(self, idx: Tensor, dtype=torch.float64, device=None, start: int = 0) -> Tensor:
        """The input tones of items `idx` from sample `start` on: Tensor[b x (n_total - start)]."""
        x = sine_batch(self.f0[idx], self.amp[idx], self.phase[idx], self.fs, self.n_warmup, self.n_window,
                       dtype=dtype, device=device)
        return x[:, start:]

    def targets(self, idx: Tensor, dtype=torch.float64, device=None) -> Tensor:
        """The bandlimited teacher output over the loss window: Tensor[b x N] (one batched irfft)."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        m = self.m[idx]
        mask = harmonic_mask(m, self.n_window)
        starts, counts = self.offsets[idx], self.offsets[idx + 1] - self.offsets[idx]
        # Flat positions of every chosen tone's coefficients, in item order, without a Python loop.
        first = torch.repeat_interleave(starts - (torch.cumsum(counts, 0) - counts), counts)
        flat = first + torch.arange(int(counts.sum()))
        spec = torch.zeros(mask.shape, dtype=self.coef.dtype)
        spec[mask] = self.coef[flat]
        return harmonic_part(spec.to(device), m, self.n_window).to(dtype)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ToneLayout:
    """Sample counts shared by every tone of a run."""

    fs: float
    n_warmup: int
    n_window: int

    @classmethod
    def from_config(cls, data_cfg: DictConfig, fs: float) -> "ToneLayout":
        n_window = analysis_length(int(round(fs)), float(data_cfg.window_seconds), str(data_cfg.window_kind))
        n_total = int(round(fs * float(data_cfg.tone_seconds)))
        if n_total <= n_window:
            raise AaexpError(f"data.tone_seconds={data_cfg.tone_seconds} leaves no warm-up before the "
                             f"{data_cfg.window_seconds} s loss window")
        return cls(float(fs), n_total - n_window, n_window)


def draw_train_tones(data_cfg: DictConfig, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """(f0 Hz, amplitude, phase), each Tensor[n] float64, drawn as the reference does.

    f0: uniform in MIDI [midi_min, midi_max], or uniform in Hz in [f0_min, f0_max] with
    linear_f0_sample. Amplitude: `level_sampling=linear` draws the gain uniformly in
    [0, 10^(db_max/20)] (the DAFx25 code); `db` draws the level uniformly in [db_min, db_max] dBFS.
    """
    u = torch.rand(3, n, generator=gen, dtype=torch.float64)
    if data_cfg.linear_f0_sample:
        lo, hi = float(data_cfg.f0_min), float(data_cfg.f0_max)
        f0 = lo + (hi - lo) * u[0]
    else:
        lo, hi = float(data_cfg.midi_min), float(data_cfg.midi_max)
        f0 = midi_to_hz(lo + (hi - lo) * u[0])
    kind = str(data_cfg.level_sampling)
    if kind == "linear":
        amp = 10.0 ** (float(data_cfg.db_max) / 20.0) * u[1]
    elif kind == "db":
        db = float(data_cfg.db_min) + (float(data_cfg.db_max) - float(data_cfg.db_min)) * u[1]
        amp = 10.0 ** (db / 20.0)
    else:
        raise AaexpError(f"data.level_sampling={kind!r} is not one of linear, db")
    return f0, amp, 2 * math.pi * u[2]


def val_tones(data_cfg: DictConfig, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """n tones evenly spaced in MIDI [val_midi_min, val_midi_max] at val_db dBFS, zero phase."""
    midi = torch.linspace(float(data_cfg.val_midi_min), float(data_cfg.val_midi_max), n, dtype=torch.float64)
    amp = torch.full((n,), 10.0 ** (float(data_cfg.val_db) / 20.0), dtype=torch.float64)
    return midi_to_hz(midi), amp, torch.zeros(n, dtype=torch.float64)


@torch.no_grad()
def teacher_targets(teacher, f0, amp, phase, layout: ToneLayout, dtype, device, batch_size: int = 16,
                    progress: bool = False, desc: str = "teacher targets") -> ToneSet:
    """Snap f0, run the teacher over each tone, keep the rfft of its window at the harmonic bins."""
    fs, n = layout.fs, layout.n_window
    m, f0s, cents = snap_f0(f0, fs, n)
    coefs, counts = [], []
    for i in bar(range(0, len(f0s), batch_size), enabled=progress, desc=desc):
        sl = slice(i, i + batch_size)
        x = sine_batch(f0s[sl], amp[sl], phase[sl], fs, layout.n_warmup, n, dtype=dtype, device=device)
        y = teacher(x)[:, layout.n_warmup:]
        if not torch.isfinite(y).all():
            raise AaexpError("the teacher's output on the training tones is not finite")
        mask = harmonic_mask(m[sl].to(device), n)
        coefs.append(torch.fft.rfft(y, dim=-1)[mask].cpu())
        counts.append(mask.sum(dim=-1).cpu())
    counts = torch.cat(counts)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)])
    return ToneSet(f0s.cpu(), m.cpu(), amp.cpu(), phase.cpu(), torch.cat(coefs), offsets, fs, layout.n_warmup, n,
                   float(cents.abs().max()))


def cache_key(teacher_path: Path, data_cfg: DictConfig, fs: float, dtype_name: str) -> str:
    """sha256 over the teacher file's bytes and every data setting that changes the tones."""
    settings = OmegaConf.to_container(data_cfg, resolve=True)
    settings.pop("cache_dir", None)
    h = hashlib.sha256(Path(teacher_path).read_bytes())
    h.update(json.dumps({"data": settings, "fs": fs, "dtype": dtype_name, "v": CACHE_VERSION}, sort_keys=True).encode())
    return h.hexdigest()


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock so parallel sweep jobs compute a cache entry once, not each."""
    try:
        import fcntl
    except ImportError:  # not POSIX: atomic rename still keeps the cache consistent
        yield
        return
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def load_or_build(teacher, teacher_path: Path, data_cfg: DictConfig, dtype_name: str, device,
                  progress: bool = False, log=None) -> tuple[ToneSet, ToneSet, Path, bool]:
    """(train, val, cache file, hit): the cached tone sets, computing and caching them on a miss."""
    if dtype_name not in DTYPES:
        raise AaexpError(f"model.dtype={dtype_name!r} is not one of {', '.join(DTYPES)}")
    dtype = DTYPES[dtype_name]
    fs = float(teacher.sample_rate)
    layout = ToneLayout.from_config(data_cfg, fs)
    key = cache_key(teacher_path, data_cfg, fs, dtype_name)
    cache_dir = Path(str(data_cfg.cache_dir)).expanduser()
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"aa_tones-{key[:20]}.pt"
    with _exclusive(cache_dir / f"{path.name}.lock"):
        if path.is_file():
            try:
                blob = load_safely(path, "an aaexp tone-target cache entry")   # weights-only: a planted file runs nothing
                train, val = ToneSet(**blob["train"]), ToneSet(**blob["val"])
                if log:
                    log.info("tone targets from cache %s", path)
                return train, val, path, True
            except Exception as exc:  # a damaged, foreign or unsafe entry is rebuilt, never trusted
                if log:
                    log.warning("cache entry not used, rebuilding it: %s", exc if isinstance(exc, AaexpError) else f"{path}: {exc}")
        gen = torch.Generator().manual_seed(int(data_cfg.seed))
        f0, amp, phase = draw_train_tones(data_cfg, int(data_cfg.n_train), gen)
        train = teacher_targets(teacher, f0, amp, phase, layout, dtype, device, progress=progress,
                                desc="teacher targets (train)")
        val = teacher_targets(teacher, *val_tones(data_cfg, int(data_cfg.n_val)), layout, dtype, device,
                              progress=progress, desc="teacher targets (val)")
        atomic_save({"train": train.to_dict(), "val": val.to_dict(), "key": key}, path)
        if log:
            log.info("tone targets computed and cached in %s", path)
        return train, val, path, False
