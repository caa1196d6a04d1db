"""The evaluation grid: exactly periodic test tones, the frequency bands, and which tone scores where.

Every tone has f0 = m·fs/N with gcd(m, N) = 1 (N: the analysis window, prime or a power of two), so
its harmonics sit on bins k·m and everything the model aliases lands on other bins (see
aaexp.aa.signal.bandlimit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from aaexp.aa.signal import tones
from aaexp.core.errors import AaexpError


@dataclass(frozen=True)
class Band:
    """A half-open frequency band [lo_hz, hi_hz) with its table name (e.g. "2k-8k")."""

    name: str
    lo_hz: float
    hi_hz: float

    def contains(self, f_hz: torch.Tensor) -> torch.Tensor:
        """BoolTensor of f_hz's shape: True where lo_hz <= f < hi_hz."""
        return (f_hz >= self.lo_hz) & (f_hz < self.hi_hz)


def parse_bands(cfg_bands) -> list[Band]:
    """`bands: {name: [lo, hi]}` from the eval config, checked: lo < hi, no overlaps."""
    bands = []
    for name, edges in dict(cfg_bands).items():
        if len(edges) != 2 or not float(edges[0]) < float(edges[1]):
            raise AaexpError(f"eval.bands.{name}: expected [lo_hz, hi_hz] with lo < hi, got {list(edges)}")
        bands.append(Band(str(name), float(edges[0]), float(edges[1])))
    if not bands:
        raise AaexpError("eval.bands is empty")
    ordered = sorted(bands, key=lambda b: b.lo_hz)
    for a, b in zip(ordered, ordered[1:]):
        if b.lo_hz < a.hi_hz:
            raise AaexpError(f"eval.bands: {a.name} and {b.name} overlap")
    return bands


@dataclass
class ToneGrid:
    """The test tones: Tensor[B] fields, one entry per (level, f0) pair, level-major order."""

    fs: int
    n_window: int                 # N (prime or a power of two, see tones.analysis_length)
    m: torch.Tensor               # LongTensor[B]: f0 = m·fs/N
    f0: torch.Tensor              # Tensor[B] float64, snapped
    f0_nominal: torch.Tensor      # Tensor[B] float64, before snapping
    level_dbfs: torch.Tensor      # Tensor[B]
    phase: float                  # radians at the first sample of the window

    def __len__(self) -> int:
        return int(self.m.numel())

    @property
    def amp(self) -> torch.Tensor:
        """Tensor[B]: peak amplitude of each sine."""
        return 10.0 ** (self.level_dbfs / 20.0)

    @property
    def max_snap_cents(self) -> float:
        """Largest |f0 - f0_nominal| in cents."""
        return float((1200.0 * torch.log2(self.f0 / self.f0_nominal)).abs().max())

    def start_phase(self, n_warmup: int) -> torch.Tensor:
        """Tensor[B]: phase at t = 0 that puts `phase` at the window's first sample.

        The window then holds the same input whatever the warm-up, so models run with different
        warm-ups are compared on identical periods. (m·n_warmup) mod N is exact in integers.
        """
        turns = torch.remainder(self.m * int(n_warmup), self.n_window).to(torch.float64) / self.n_window
        return torch.remainder(self.phase - 2.0 * math.pi * turns, 2.0 * math.pi)


def make_grid(cfg_eval, fs: int, n_tones: int | None = None, levels_dbfs: list[float] | None = None) -> ToneGrid:
    """Log-spaced tones from `eval.tones` (f_min_hz..f_max_hz) at every level, snapped to the window."""
    t = cfg_eval.tones
    n = int(n_tones if n_tones is not None else t.n)
    levels = [float(v) for v in (levels_dbfs if levels_dbfs is not None else t.levels_dbfs)]
    f_lo, f_hi = float(t.f_min_hz), float(t.f_max_hz)
    if n < 1 or not levels:
        raise AaexpError(f"eval grid needs at least one tone and one level (got {n} tones, levels {levels})")
    if not 0 < f_lo <= f_hi < fs / 2:
        raise AaexpError(f"eval.tones: need 0 < f_min_hz <= f_max_hz < fs/2 = {fs / 2:g} Hz, got {f_lo:g}..{f_hi:g}")
    if any(v > 0 for v in levels):
        raise AaexpError(f"eval levels are dBFS of the sine's peak and must be <= 0, got {levels}")
    f_nom = (torch.logspace(math.log10(f_lo), math.log10(f_hi), n, dtype=torch.float64) if n > 1
             else torch.tensor([f_lo], dtype=torch.float64))
    return grid_of(cfg_eval, fs, f_nom, levels)


def confirm_f0(cfg_eval) -> torch.Tensor:
    """The confirmation grid's nominal f0s (`eval.confirm`): the published protocol's piano keys
    (MIDI midi_min..midi_max) plus the geometric midpoints of the standard grid's f0s above
    `between_above_hz` — tones that no stopping or best-checkpoint choice on the standard grid has seen."""
    c, t = cfg_eval.confirm, cfg_eval.tones
    keys = tones.midi_to_hz(torch.arange(int(c.midi_min), int(c.midi_max) + 1, dtype=torch.float64))
    std = torch.logspace(math.log10(float(t.f_min_hz)), math.log10(float(t.f_max_hz)), int(t.n), dtype=torch.float64)
    mid = (std[:-1] * std[1:]).sqrt()
    mid = mid[mid > float(c.between_above_hz)]
    return torch.cat([keys, mid]).sort().values


def confirm_grid(cfg_eval, fs: int) -> ToneGrid:
    """The confirmation grid at `eval.confirm.level_dbfs` (see confirm_f0)."""
    g = grid_of(cfg_eval, fs, confirm_f0(cfg_eval), [float(cfg_eval.confirm.level_dbfs)])
    new = ~torch.isin(g.m, make_grid(cfg_eval, fs).m)   # 27.5 Hz is both a key and the grid's end: keep it out
    return ToneGrid(g.fs, g.n_window, g.m[new], g.f0[new], g.f0_nominal[new], g.level_dbfs[new], g.phase)


def grid_of(cfg_eval, fs: int, f_nom: torch.Tensor, levels: list[float]) -> ToneGrid:
    """Tones at nominal f0s `f_nom` (Tensor[n], ascending) at every level, snapped to the window."""
    t = cfg_eval.tones
    n, f_lo, f_hi = len(f_nom), float(f_nom.min()), float(f_nom.max())
    n_window = tones.analysis_length(int(fs), float(cfg_eval.window_s), str(cfg_eval.window_kind))
    m, f0, _ = tones.snap_f0(f_nom, int(fs), n_window, within=(f_lo, f_hi))
    if len(set(m.tolist())) < n:
        raise AaexpError(f"eval grid: {n} tones from {f_lo:g} Hz are closer than the window's {fs / n_window:.3g} Hz bins; "
                         f"lengthen window_s or use fewer tones")
    k = len(levels)
    return ToneGrid(
        fs=int(fs),
        n_window=n_window,
        m=m.long().repeat(k),
        f0=f0.to(torch.float64).repeat(k),
        f0_nominal=f_nom.repeat(k),
        level_dbfs=torch.tensor(levels, dtype=torch.float64).repeat_interleave(n),
        phase=float(t.phase),
    )


def f0_groups(grid: ToneGrid, bands: list[Band]) -> torch.Tensor:
    """BoolTensor[nb x B]: tone b scores in band i when its (snapped) f0 lies in band i."""
    return torch.stack([band.contains(grid.f0) for band in bands])


def bin_band_masks(n_window: int, fs: int, bands: list[Band], device=None) -> torch.Tensor:
    """BoolTensor[nb x (N//2+1)]: rfft bins whose frequency k·fs/N lies in each band."""
    freqs = torch.arange(n_window // 2 + 1, dtype=torch.float64, device=device) * (fs / n_window)
    return torch.stack([band.contains(freqs) for band in bands])
