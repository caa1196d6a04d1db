"""Test tones that are exactly periodic in the analysis window.

With a window of N samples and f0 = m·fs/N (m an integer, 1 ≤ m < N/2, gcd(m, N) = 1), harmonic k
of f0 sits exactly on FFT bin k·m, and every harmonic that folds back over Nyquist lands on a bin
that is *not* a multiple of m (m·h ≡ ±m·j (mod N) only for h ≡ ±j when m is invertible mod N).
Bandlimiting is then exact: see `aaexp.aa.signal.bandlimit`.

Two window kinds: `prime` (default; N = the largest prime ≤ fs·seconds, so every m qualifies and
f0 snaps by at most half a bin) and `pow2` (N = the largest power of two ≤ fs·seconds, m odd: plain
power-of-two FFTs, several times faster, but a shorter window and snaps of up to one bin).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

from aaexp.core.errors import AaexpError

A4_HZ = 440.0
A4_MIDI = 69.0


def _is_prime(n: int) -> bool:
    """Deterministic trial division; N is at most a few million samples here."""
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    for d in range(3, math.isqrt(n) + 1, 2):
        if n % d == 0:
            return False
    return True


WINDOW_KINDS = ("prime", "pow2")


def analysis_length(fs: int, seconds: float, kind: str = "prime") -> int:
    """The analysis/loss window length N in samples: the largest prime (kind="prime") or power of
    two (kind="pow2") ≤ round(fs·seconds)."""
    target = int(round(float(fs) * float(seconds)))
    if target < 5:
        # m must satisfy 1 ≤ m < N/2, which needs N ≥ 3; 5 keeps at least two usable f0 values.
        raise AaexpError(f"analysis window of {seconds} s at {fs} Hz is {target} samples; need at least 5")
    if kind == "pow2":
        return 1 << (target.bit_length() - 1)
    if kind != "prime":
        raise AaexpError(f"window kind {kind!r} is not one of {', '.join(WINDOW_KINDS)}")
    n = target
    while not _is_prime(n):
        n -= 1
    return n


@lru_cache(maxsize=16)
def _max_gap(n: int) -> int:
    """Largest distance between consecutive integers coprime to n (1 for prime n, 2 for a power of
    two): found over one period of n's squarefree kernel."""
    if _is_prime(n):
        return 1
    rad, rest, p = 1, n, 2
    while p * p <= rest:
        if rest % p == 0:
            rad *= p
            while rest % p == 0:
                rest //= p
        p += 1
    rad *= rest if rest > 1 else 1
    if rad > 1 << 20:
        raise AaexpError(f"window length {n}: too many small factors to snap f0 to it")
    ok = [v for v in range(1, 2 * rad + 2) if math.gcd(v, rad) == 1]
    return max(b - a for a, b in zip(ok, ok[1:]))


def snap_f0(f0, fs: float, n: int, within: tuple[float, float] | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Snap frequencies to the nearest exactly periodic f0 = m·fs/n with gcd(m, n) = 1.

    Args:
        f0: frequencies in Hz, Tensor[B] (or anything torch.as_tensor takes).
        fs: sample rate in Hz.
        n: analysis window length (see `analysis_length`).
        within: (lo, hi) Hz: prefer the nearest periodic f0 inside this range (an evaluation grid's
            end tones then stay in their band whatever the window); ignored where none is near.

    Returns:
        m: LongTensor[B], FFT bin of the fundamental, 1 ≤ m < n/2 and coprime to n.
        f0_snapped: Tensor[B] float64, m·fs/n in Hz.
        cents: Tensor[B] float64, signed snap 1200·log2(f0_snapped / f0).
    """
    f0 = torch.as_tensor(f0, dtype=torch.float64).reshape(-1)
    if not torch.isfinite(f0).all() or (f0 <= 0).any():
        raise AaexpError("snap_f0: every f0 must be a finite frequency > 0 Hz")
    top = (n - 1) // 2
    x = (f0 * n / fs).clamp(1.0, float(top))
    # Nearest usable bin among the neighbours: within one gap of x, or two when a range cuts some off.
    gap = _max_gap(n)
    cand = (torch.floor(x).long().unsqueeze(-1) + torch.arange(-2 * gap, 2 * gap + 2)).clamp(1, top)
    usable = torch.gcd(cand, torch.tensor(n)) == 1
    dist = (cand.to(torch.float64) - x.unsqueeze(-1)).abs()
    pick = torch.where(usable, dist, math.inf).argmin(-1)
    if within is not None:
        hz = cand.to(torch.float64) * fs / n
        inside = usable & (hz >= float(within[0]) * (1 - 1e-12)) & (hz <= float(within[1]) * (1 + 1e-12))
        pick = torch.where(inside.any(-1), torch.where(inside, dist, math.inf).argmin(-1), pick)
    m = torch.gather(cand, -1, pick.unsqueeze(-1)).squeeze(-1)
    f0_snapped = m.to(torch.float64) * fs / n
    cents = 1200.0 * torch.log2(f0_snapped / f0)
    return m, f0_snapped, cents


def max_snap_cents(fs: float, n: int, f_min: float) -> float:
    """Worst-case |snap| in cents for any f0 ≥ f_min: half the largest gap between usable bins
    (half a bin for a prime window, one bin for a power of two) down from the lowest f0."""
    half_gap = 0.5 * _max_gap(n) * fs / n
    if f_min <= half_gap:
        return math.inf                       # f0 near the lowest bin snaps by ≥ itself: unbounded in cents
    return 1200.0 * math.log2(f_min / (f_min - half_gap))


def sine_batch(f0, amp, phase, fs: float, n_warmup: int, n_window: int,
               dtype: torch.dtype = torch.float64, device=None) -> Tensor:
    """amp·sin(2π·f0·t + phase) for t = 0 .. (n_warmup + n_window − 1)/fs.

    Pass snapped f0 (`snap_f0`) so that the last `n_window` samples are exactly periodic. The
    phase is accumulated in float64 cycles and wrapped to [0, 1) before the sine, so even float32
    output keeps the periodicity error at float32 rounding.

    Args:
        f0, amp, phase: Tensor[B] (Hz, linear gain, radians); scalars broadcast.
        fs: sample rate in Hz.
        n_warmup: samples before the analysis window (start-up transient, discarded later).
        n_window: analysis window length N.

    Shape:
        output: Tensor[B x (n_warmup + n_window)] in `dtype` on `device`.
    """
    f0 = torch.as_tensor(f0, dtype=torch.float64, device=device).reshape(-1)
    amp = torch.as_tensor(amp, dtype=torch.float64, device=device).reshape(-1)
    phase = torch.as_tensor(phase, dtype=torch.float64, device=device).reshape(-1)
    f0, amp, phase = torch.broadcast_tensors(f0, amp, phase)
    k = torch.arange(int(n_warmup) + int(n_window), dtype=torch.float64, device=f0.device)
    cycles = torch.remainder((f0 / float(fs)).unsqueeze(-1) * k, 1.0)
    x = amp.unsqueeze(-1) * torch.sin(2.0 * math.pi * cycles + phase.unsqueeze(-1))
    return x.to(dtype)


def midi_to_hz(midi):
    """MIDI note number → Hz (A4 = 69 = 440 Hz); Tensor in, float64 Tensor out."""
    midi = torch.as_tensor(midi, dtype=torch.float64)
    return A4_HZ * torch.pow(2.0, (midi - A4_MIDI) / 12.0)


def hz_to_midi(hz):
    """Hz → (fractional) MIDI note number; the inverse of `midi_to_hz`."""
    hz = torch.as_tensor(hz, dtype=torch.float64)
    return A4_MIDI + 12.0 * torch.log2(hz / A4_HZ)
