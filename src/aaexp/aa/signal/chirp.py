"""Fast DFTs of prime length (Bluestein's chirp-z), and harmonic analysis/synthesis built on them.

The analysis window N is prime so that bandlimiting is exact, but FFT libraries are slow at prime
lengths (MKL: ~35x slower for N = 44,089 than for 44,100). Bluestein's identity
k·j = (k² + j² − (k − j)²)/2 turns any set of DFT bins into a convolution with the chirp
e^{iπt²/N}, done with FFTs of fast lengths. Two real rows are packed into one complex row, halving
the work. Everything is plain torch: batched, differentiable, any device.

Harmonics: with f0 = m·fs/N and gcd(m, N) = 1, the permuted signal z[j] = y[j·m⁻¹ mod N] has
Z[k] = Y[k·m], so the harmonics of f0 are the *lowest* bins of z and only those need computing.
A convolution between N samples and those few bins is cut into blocks on its long side (`Blocks`),
so the long side costs one FFT of about its length instead of two.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

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
    """A scratch tensor kept between calls, contents left from the last one (allocating and first
    touching several MB per call costs as much as an FFT here). Only used without autograd."""
    key = (tag, shape, dtype, device)
    buf = _WORKSPACE.get(key)
    if buf is None:
        if len(_WORKSPACE) >= 8:
            _WORKSPACE.clear()
        buf = _WORKSPACE[key] = torch.empty(shape, dtype=dtype, device=device)
    return buf


class Blocks(NamedTuple):
    """How a convolution between a long side (N samples) and a short side (P samples) is cut:
    `count` pieces of `step` samples on the long side, each convolved at FFT length `size`
    (step + P − 1 ≤ size)."""
    size: int
    step: int
    count: int


@lru_cache(maxsize=64)
def block_plan(n_long: int, n_short: int) -> Blocks:
    """The cheapest cut, counting L·(log2(L) + 3) per transform (the FFT and the elementwise passes
    around it): `count` long-side transforms and one short-side transform of length L (one piece,
    count = 1, is the plain Bluestein convolution). Pieces of at least 64 samples: the count
    ignores each FFT call's fixed cost."""
    def cost(size: int) -> tuple[float, Blocks]:
        step = size - n_short + 1
        count = -(-n_long // step)
        return (count + 1) * size * (math.log2(size) + 3), Blocks(size, step, count)

    single = good_size(n_long + n_short - 1)
    options = [cost(single)]
    size = 1 << max(6, math.ceil(math.log2(2 * n_short)))
    while size < single:
        options.append(cost(size))
        size *= 2
    return min(options)[1]


@lru_cache(maxsize=32)
def _block_kernels(n: int, size: int, starts: tuple[int, ...], sign: int, dtype: torch.dtype,
                   device: torch.device) -> Tensor:
    """The kernel spectra of the pieces (`_kernel_spectrum` at each piece's offset): Tensor[count x L]."""
    return torch.stack([_kernel_spectrum(n, size, t0, sign, dtype, device) for t0 in starts])


def _split(x: Tensor, plan: Blocks, pre: Tensor | None = None) -> Tensor:
    """pre·x, Tensor[R x I] (I ≤ count·step), cut into zero-padded pieces Tensor[R x count x size].
    Padded here, not with torch.fft's n= (several times slower on the CPU); without autograd,
    multiplied straight into a scratch buffer."""
    rows, n_in = x.shape
    if torch.is_grad_enabled() and (x.requires_grad or (pre is not None and pre.requires_grad)):
        pad = torch.nn.functional.pad
        a = x if pre is None else x * pre
        return pad(pad(a, (0, plan.count * plan.step - n_in)).reshape(rows, plan.count, plan.step),
                   (0, plan.size - plan.step))
    pieces = _workspace("pieces", (rows, plan.count, plan.size), x.dtype, x.device)
    step = plan.step
    full, rest = divmod(n_in, step)                # count = full, or full + 1 with a partial piece
    head = pieces[..., :step]
    pieces[..., step:].zero_()
    parts = [(x[:, : full * step].reshape(rows, full, step), slice(0, full * step), head[:, :full])] if full else []
    if rest:
        parts.append((x[:, full * step:], slice(full * step, n_in), head[:, full, :rest]))
        head[:, full, rest:].zero_()
    for src, span, out in parts:
        if pre is None:
            out.copy_(src)
        else:
            torch.mul(src, pre[span].reshape(src.shape[1:]), out=out)
    return pieces


def _conv_long_input(pieces: Tensor, i0: int, o0: int, n_out: int, n: int, sign: int, plan: Blocks) -> Tensor:
    """out[o] = Σ_i a[i]·h[o − i] for o = o0..o0+n_out−1 from the zero-padded pieces of a
    (a[i0 + s·step + r] at pieces[:, s, r]): each piece's spectrum times its kernel's, summed, one
    inverse FFT. Shape: pieces: Tensor[R x count x size]; output: Tensor[R x n_out] (a view)."""
    step = plan.step
    starts = tuple(o0 - (i0 + s * step + step - 1) for s in range(plan.count))
    kern = _block_kernels(n, plan.size, starts, sign, pieces.dtype, pieces.device)
    spec = torch.fft.fft(pieces).mul_(kern).sum(dim=1)
    return torch.fft.ifft(spec)[..., step - 1: step - 1 + n_out]


def _conv_long_output(a: Tensor, i0: int, o0: int, n: int, sign: int, plan: Blocks) -> Tensor:
    """out[o] = Σ_i a[i]·h[o − i] for o = o0..o0+count·step−1, a indexed i = i0..i0+I−1: one FFT of
    a, then one inverse FFT per piece of outputs, with its own kernel.
    Shape: a: Tensor[R x I]; output: Tensor[R x count x step], out[o0 + s·step + r] at [:, s, r]."""
    n_in = a.shape[-1]
    starts = tuple(o0 + s * plan.step - (i0 + n_in - 1) for s in range(plan.count))
    kern = _block_kernels(n, plan.size, starts, sign, a.dtype, a.device)
    spec = torch.fft.fft(torch.nn.functional.pad(a, (0, plan.size - n_in)))
    return torch.fft.ifft(spec.unsqueeze(1) * kern)[..., n_in - 1: n_in - 1 + plan.step]


def chirp_conv(x: Tensor, i0: int, o0: int, n_out: int, n: int, sign: int,
               pre: Tensor | None = None, post: Tensor | None = None) -> Tensor:
    """post·out[o], out[o] = Σ_i pre[i]·x[i]·exp(sign·iπ(o − i)²/n), o = o0..o0+n_out−1, i = i0..i0+I−1.

    Shape:
        x: complex Tensor[B x I]; pre: Tensor[I] or None; post: Tensor[n_out] or None;
        output: complex Tensor[B x n_out] (a new tensor).
    """
    rows, n_in = x.shape
    plan = block_plan(max(n_in, n_out), min(n_in, n_out))
    if n_in >= n_out:
        seg = _conv_long_input(_split(x, plan, pre), i0, o0, n_out, n, sign, plan)
        return seg * post if post is not None else seg.clone()
    out = _conv_long_output(x if pre is None else x * pre, i0, o0, n, sign, plan)    # R x count x step
    if post is None:
        return out.reshape(rows, -1)[:, :n_out]
    post = torch.nn.functional.pad(post, (0, plan.count * plan.step - n_out)).reshape(plan.count, plan.step)
    return (out * post).reshape(rows, -1)[:, :n_out]        # a view of one new tensor


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
    q = y.shape[-1] // 2
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
def _permutations(ms: tuple[int, ...], n: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """(into, back), LongTensor[rows x N] each, for a batch padded to an even number of rows (a
    padding row gets m = 1). Cached: an evaluation runs the same tones through every model.

    - into[b, j] = j·m_b⁻¹ mod N: z = y[into] puts harmonic k of row b on bin k of z;
    - back[b, t] = 2·(t·m_b mod N) + b % 2: where sample t of row b sits in view_as_real of the
      packed synthesis (rows 2r + i·rows 2r+1).
    """
    ms = tuple(ms) + (1,) * (len(ms) % 2)
    t = torch.arange(n, device=device)
    inv = torch.tensor([pow(v, -1, n) for v in ms], dtype=torch.int64, device=device)
    into = torch.remainder(inv.unsqueeze(-1) * t, n)                     # < n² < 2^63
    m = torch.tensor(ms, dtype=torch.int64, device=device)
    back = torch.remainder(m.unsqueeze(-1) * t, n).mul_(2).add_(torch.arange(len(ms), device=device).unsqueeze(-1) % 2)
    return into, back


def _plan(m: Tensor, n: int) -> tuple[Tensor, Tensor]:
    return _permutations(tuple(int(v) for v in m.tolist()), n, m.device)


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
    if count <= 32:
        cos, sin = _low_bin_basis(n, count, y.dtype, y.device)
        z = torch.gather(y, -1, _plan(m, n)[0][:b])
        return torch.complex(z @ cos, -(z @ sin))
    rows = y if b % 2 == 0 else torch.cat([y, y.new_zeros(1, n)])
    z = torch.gather(rows, -1, _plan(m, n)[0])
    q = count - 1
    return _unpack_spectra(dft_bins(torch.complex(z[0::2], z[1::2]), -q, 2 * q + 1), q, b)


def from_harmonic_bins(coef: Tensor, m: Tensor, n: int) -> Tensor:
    """The real signal whose only nonzero bins are ±k·m with Y[k·m] = coef[k]: Tensor[B x N]:
    one packed synthesis per pair of rows, gathered straight back into each row's sample order."""
    u = _synthesize_packed(coef, n)                                          # R x N, complex
    flat = torch.view_as_real(u).reshape(u.shape[0], 1, -1).expand(-1, 2, -1)    # R x 2 x 2N
    return torch.gather(flat, 2, _plan(m, n)[1].reshape(-1, 2, n)).reshape(-1, n)[: coef.shape[0]]
