"""Fast DFTs of prime length (Bluestein's chirp-z), and harmonic analysis/synthesis built on them.

The analysis window N is prime so that bandlimiting is exact, but FFT libraries are slow at prime
lengths (MKL: ~35x slower for N = 44,089 than for 44,100). Bluestein's identity
k·j = (k² + j² − (k − j)²)/2 turns any set of DFT bins into a convolution with the chirp
e^{iπt²/N}, done with FFTs of a 7-smooth length L, which are fast. Two real rows are packed into
one complex row, halving the work. Everything is plain torch: batched, differentiable, any device.

Harmonics: with f0 = m·fs/N and gcd(m, N) = 1, the permuted signal z[j] = y[j·m⁻¹ mod N] has
Z[k] = Y[k·m], so the harmonics of f0 are the *lowest* bins of z and only those need computing.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor


def good_size(n: int) -> int:
    """Smallest 2^a·s ≥ n with a small odd part s ≤ 45: FFT lengths that MKL and cuFFT run fast
    (a 7-smooth length with a large power of 3, such as 3^8·7, is several times slower)."""
    n = max(int(n), 1)
    best = None
    for odd in (1, 3, 5, 7, 9, 15, 21, 25, 27, 35, 45):
        size = odd << max(0, math.ceil(math.log2(n / odd)))
        while size // 2 >= n and size % 2 == 0:
            size //= 2
        best = size if best is None else min(best, size)
    return best


def _chirp(t: Tensor, n: int, sign: int) -> Tensor:
    """exp(sign·iπ·t²/n), with t² reduced mod 2n in exact integer arithmetic first."""
    r = torch.remainder(t * t, 2 * n).to(torch.float64)
    return torch.polar(torch.ones_like(r), sign * math.pi * r / n)


@lru_cache(maxsize=32)
def _chirp_range(start: int, count: int, n: int, sign: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """_chirp for t = start..start+count−1, cached (the pre/post multipliers of every transform)."""
    return _chirp(torch.arange(start, start + count, dtype=torch.int64, device=device), n, sign).to(dtype)


@lru_cache(maxsize=32)
def _kernel_spectrum(n: int, size: int, t0: int, sign: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """FFT_size of h[q] = exp(sign·iπ(q + t0)²/n), q = 0..size−1 (the convolution kernel)."""
    q = torch.arange(size, dtype=torch.int64, device=device) + t0
    return torch.fft.fft(_chirp(q, n, sign)).to(dtype)


_WORKSPACE: dict[tuple, Tensor] = {}


def _workspace(tag: str, shape: tuple, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A zero-initialised scratch tensor kept between calls (the zero-padded FFT input: only its
    head is rewritten, so padding costs nothing). Only used without autograd."""
    key = (tag, shape, dtype, device)
    buf = _WORKSPACE.get(key)
    if buf is None:
        if len(_WORKSPACE) >= 24:
            _WORKSPACE.clear()
        buf = _WORKSPACE[key] = torch.zeros(shape, dtype=dtype, device=device)
    return buf


def chirp_conv(x: Tensor, i0: int, o0: int, n_out: int, n: int, sign: int,
               pre: Tensor | None = None, post: Tensor | None = None) -> Tensor:
    """post·out[o], out[o] = Σ_i pre[i]·x[i]·exp(sign·iπ(o − i)²/n), o = o0..o0+n_out−1, i = i0..i0+I−1.

    Shape:
        x: complex Tensor[B x I]; pre: Tensor[I] or None; post: Tensor[n_out] or None;
        output: complex Tensor[B x n_out] (a new tensor).
    """
    rows, n_in = x.shape
    size = good_size(n_in + n_out - 1)
    t0 = o0 - (i0 + n_in - 1)                      # smallest o − i
    kern = _kernel_spectrum(n, size, t0, sign, x.dtype, x.device)
    if torch.is_grad_enabled() and x.requires_grad:
        a = x if pre is None else x * pre
        full = torch.fft.ifft(torch.fft.fft(a, n=size).mul_(kern))
    else:   # same arithmetic in scratch buffers; the input's padding stays zero (keyed by n_in)
        buf = _workspace(f"in{n_in}", (rows, size), x.dtype, x.device)
        if pre is None:
            buf[:, :n_in].copy_(x)
        else:
            torch.mul(x, pre, out=buf[:, :n_in])
        full = torch.fft.ifft(torch.fft.fft(buf).mul_(kern))
    seg = full[..., n_in - 1: n_in - 1 + n_out]
    return seg * post if post is not None else seg.clone()


def dft_bins(x: Tensor, k0: int, count: int) -> Tensor:
    """X[k] = Σ_j x[j]·e^{−2πi·kj/N} for k = k0..k0+count−1 (negative k allowed).

    Shape:
        x: complex Tensor[B x N]; output: complex Tensor[B x count].
    """
    n = x.shape[-1]
    return chirp_conv(x, 0, k0, count, n, +1, pre=_chirp_range(0, n, n, -1, x.dtype, x.device),
                      post=_chirp_range(k0, count, n, -1, x.dtype, x.device))


def idft_points(c: Tensor, k0: int, n: int) -> Tensor:
    """u[j] = Σ_k c[k]·e^{+2πi·kj/N} for j = 0..N−1, c indexed k = k0..k0+K−1 (unnormalised).

    Shape:
        c: complex Tensor[B x K]; output: complex Tensor[B x N].
    """
    return chirp_conv(c, k0, 0, n, n, -1, pre=_chirp_range(k0, c.shape[-1], n, +1, c.dtype, c.device),
                      post=_chirp_range(0, n, n, +1, c.dtype, c.device))


@lru_cache(maxsize=32)
def _scaled_chirp(n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The synthesis post-multiplier with the 1/N of the inverse DFT folded in."""
    return _chirp_range(0, n, n, +1, dtype, device) / n


def _complex_of(x: Tensor) -> torch.dtype:
    return torch.complex128 if x.dtype == torch.float64 else torch.complex64


def _pack(y: Tensor) -> Tensor:
    """Real Tensor[B x N] → complex Tensor[ceil(B/2) x N]: rows 2r + i·rows 2r+1."""
    if y.shape[0] % 2:
        y = torch.cat([y, y.new_zeros(1, y.shape[-1])])
    return torch.complex(y[0::2], y[1::2])


def _unpack_spectra(c: Tensor, q: int, b: int) -> Tensor:
    """Bins k = −q..q of packed rows → bins 0..q of each real row: complex Tensor[b x (q+1)]."""
    pos, neg = c[..., q:], c[..., : q + 1].flip(-1).conj()       # C[k], conj(C[−k]) for k = 0..q
    even, odd = 0.5 * (pos + neg), -0.5j * (pos - neg)
    return torch.stack([even, odd], dim=1).reshape(-1, q + 1)[:b]


def rfft(y: Tensor) -> Tensor:
    """torch.fft.rfft(y) along the last axis, fast for any length (prime included).

    Shape:
        y: real Tensor[B x N]; output: complex Tensor[B x (N//2 + 1)].
    """
    n, q = y.shape[-1], y.shape[-1] // 2
    return _unpack_spectra(dft_bins(_pack(y), -q, 2 * q + 1), q, y.shape[0])


def irfft(spec: Tensor, n: int) -> Tensor:
    """torch.fft.irfft(spec, n) along the last axis (imaginary parts of DC/Nyquist ignored).

    Shape:
        spec: complex Tensor[B x (n//2 + 1)]; output: real Tensor[B x n].
    """
    return synthesize(spec, n)


def _synthesize_packed(coef: Tensor, n: int) -> Tensor:
    """Rows 2r + i·rows 2r+1 of `synthesize`, as one complex Tensor[ceil(B/2) x N]."""
    b, k1 = coef.shape
    coef = torch.cat([coef[..., :1].real.to(coef.dtype), coef[..., 1:]], dim=-1)
    if b % 2:
        coef = torch.cat([coef, coef.new_zeros(1, k1)])
    even, odd = coef[0::2], coef[1::2]
    # Hermitian extension of each row, then rows 2r + i·rows 2r+1: one complex synthesis for both.
    pos = even + 1j * odd                                                 # k = 0..K
    neg = (even.conj() + 1j * odd.conj())[..., 1:].flip(-1)               # k = −K..−1
    if n % 2 == 0 and k1 - 1 == n // 2:                                   # Nyquist bin: once, real
        pos = torch.cat([pos[..., :-1], (even[..., -1:].real + 1j * odd[..., -1:].real).to(pos.dtype)], -1)
        neg = neg[..., 1:]
    packed = torch.cat([neg, pos], dim=-1)
    k0 = -(packed.shape[-1] - k1)
    return chirp_conv(packed, k0, 0, n, n, -1, pre=_chirp_range(k0, packed.shape[-1], n, +1, packed.dtype, packed.device),
                      post=_scaled_chirp(n, packed.dtype, packed.device))


def synthesize(coef: Tensor, n: int) -> Tensor:
    """Real signals (1/N)·Σ_{|k|≤K} C[k]e^{2πi·kj/N} with C[−k] = conj(C[k]), from bins k = 0..K.

    Shape:
        coef: complex Tensor[B x (K+1)] (K < N/2; for even N a Nyquist bin counts once);
        output: real Tensor[B x N].
    """
    u = _synthesize_packed(coef, n)
    return torch.stack([u.real, u.imag], dim=1).reshape(-1, n)[: coef.shape[0]]


@lru_cache(maxsize=4)
def _harmonic_plan(ms: tuple[int, ...], n: int, device: torch.device) -> Tensor:
    """perm[b, j] = j·m_b⁻¹ mod N, LongTensor[rows x N]: z = y[perm] puts harmonic k of row b on
    bin k of z, and y = z scattered back to perm. The batch is padded to an even number of rows (a
    padding row gets m = 1). Cached: an evaluation runs the same tones through every model."""
    ms = tuple(ms) + (1,) * (len(ms) % 2)
    inv = torch.tensor([pow(v, -1, n) for v in ms], dtype=torch.int64, device=device)
    return torch.remainder(inv.unsqueeze(-1) * torch.arange(n, device=device), n)   # < n² < 2^63


def _plan(m: Tensor, n: int) -> Tensor:
    return _harmonic_plan(tuple(int(v) for v in m.tolist()), n, m.device)


@lru_cache(maxsize=8)
def _low_bin_basis(n: int, count: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """cos and sin of 2π·k·j/n for j = 0..n−1, k = 0..count−1: Tensor[n x count] each."""
    j = torch.arange(n, dtype=torch.float64, device=device)
    k = torch.arange(count, dtype=torch.float64, device=device)
    phase = 2 * math.pi * torch.remainder(j.unsqueeze(-1) * k, float(n)) / n
    return torch.cos(phase).to(dtype), torch.sin(phase).to(dtype)


def harmonic_bins(y: Tensor, m: Tensor, count: int) -> Tensor:
    """Y[k·m] for k = 0..count−1 (harmonic k of f0 = m·fs/N, DC first), without a full-length DFT.

    A few harmonics are read by a direct projection, many by one chirp-z transform of the
    permuted signal, two real rows per complex row. Requires gcd(m, N) = 1 (true for prime N).

    Shape:
        y: real Tensor[B x N]; m: LongTensor[B]; output: complex Tensor[B x count].
    """
    n, b = y.shape[-1], y.shape[0]
    perm = _plan(m, n)
    if count <= 32:
        cos, sin = _low_bin_basis(n, count, y.dtype, y.device)
        z = torch.gather(y, -1, perm[:b])
        return torch.complex(z @ cos, -(z @ sin))
    rows = y if b % 2 == 0 else torch.cat([y, y.new_zeros(1, n)])
    z = torch.gather(rows, -1, perm)
    packed = torch.complex(z[0::2], z[1::2])
    q = count - 1
    return _unpack_spectra(dft_bins(packed, -q, 2 * q + 1), q, b)


def from_harmonic_bins(coef: Tensor, m: Tensor, n: int) -> Tensor:
    """The real signal whose only nonzero bins are ±k·m with Y[k·m] = coef[k]: Tensor[B x N]."""
    perm = _plan(m, n)
    u = _synthesize_packed(coef, n)
    z = torch.stack([u.real, u.imag], dim=1).reshape(-1, n)
    return torch.empty_like(z).scatter_(-1, perm, z)[: coef.shape[0]]
