"""The harmonic loss against a hand computation: a NumPy DFT loop at the harmonic bins."""

import math

import numpy as np
import pytest
import torch

from aaexp.aa.loss.harmonic import HarmonicLoss, harmonic_weights

N = 1009  # prime


def periodic(m: int, amps: list[float], phases: list[float], rng, alias: float = 0.0) -> np.ndarray:
    """Σ_k a_k cos(2π k m n / N + φ_k) plus optional energy on non-harmonic bins."""
    n = np.arange(N)
    y = np.zeros(N)
    for k, (a, ph) in enumerate(zip(amps, phases), start=1):
        if k * m < N / 2:
            y += a * np.cos(2 * np.pi * k * m * n / N + ph)
    if alias:
        b = m + 1 if (m + 1) % m else m + 2
        y += alias * np.cos(2 * np.pi * b * n / N + rng.uniform(0, 2 * np.pi))
    return y


def hand_loss(y: np.ndarray, t: np.ndarray, m: int, k_max: int = 10, floor_db: float = -120.0) -> float:
    """Written out term by term: magnitude 2|DFT|/N at bin k·m for each harmonic below N/2."""
    n = np.arange(N)
    terms, weights = [], []
    for k in range(1, k_max + 1):
        b = k * m
        if 2 * b >= N:
            break
        basis = np.exp(-2j * np.pi * b * n / N)
        ay = 2 * abs(np.sum(y * basis)) / N
        at = 2 * abs(np.sum(t * basis)) / N
        dy = max(20 * math.log10(ay) if ay > 0 else -math.inf, floor_db)
        dt = max(20 * math.log10(at) if at > 0 else -math.inf, floor_db)
        terms.append((dy - dt) ** 2)
        weights.append(1.0 / k)
    w = np.array(weights) / sum(weights)
    return float(np.dot(w, terms))


def test_matches_hand_computation_per_item_and_batched():
    rng = np.random.default_rng(3)
    ms = [7, 40, 150, 300]  # 300: only harmonic 1 lies below N/2 (2·300 = 600 > 504.5)
    ys, ts = [], []
    for m in ms:
        amps_t = rng.uniform(0.01, 0.5, 10)
        amps_y = amps_t * rng.uniform(0.5, 1.5, 10)
        ph = rng.uniform(0, 2 * np.pi, 10)
        ts.append(periodic(m, list(amps_t), list(ph), rng))
        ys.append(periodic(m, list(amps_y), list(ph + rng.normal(0, 0.3, 10)), rng, alias=0.05))
    y, t = torch.tensor(np.array(ys)), torch.tensor(np.array(ts))
    m = torch.tensor(ms)
    per_item = HarmonicLoss(10, -120.0, reduction="none")(y, t, m)
    expected = [hand_loss(ys[i], ts[i], ms[i]) for i in range(len(ms))]
    np.testing.assert_allclose(per_item.numpy(), expected, rtol=1e-9, atol=1e-9)
    assert float(HarmonicLoss(10, -120.0)(y, t, m)) == pytest.approx(np.mean(expected), rel=1e-9)
    assert expected[3] > 0  # the single-harmonic item still counts


def test_floor_and_identity():
    rng = np.random.default_rng(0)
    t = periodic(11, [0.3, 0.0, 0.1], [0.0, 0.0, 1.0], rng)  # harmonic 2 absent, 4..10 absent
    y = t.copy()
    loss = HarmonicLoss(10, -120.0, reduction="none")
    assert float(loss(torch.tensor(y[None]), torch.tensor(t[None]), torch.tensor([11]))[0]) == pytest.approx(0.0, abs=1e-12)
    # A missing harmonic in both costs nothing; one present only in y costs (level − floor)², weighted.
    y2 = y + 1e-3 * np.cos(2 * np.pi * 22 * np.arange(N) / N)
    got = float(loss(torch.tensor(y2[None]), torch.tensor(t[None]), torch.tensor([11]))[0])
    assert got == pytest.approx(hand_loss(y2, t, 11), rel=1e-9)


def test_weights_are_one_over_k_normalised_over_valid():
    valid = torch.tensor([[True] * 10, [True, True, True] + [False] * 7])
    w = harmonic_weights(valid)
    k = np.arange(1, 11)
    np.testing.assert_allclose(w[0].numpy(), (1 / k) / np.sum(1 / k))
    np.testing.assert_allclose(w[1, :3].numpy(), (1 / k[:3]) / np.sum(1 / k[:3]))
    assert float(w[1, 3:].abs().sum()) == 0.0


def test_gradient_flows_to_the_student_only():
    rng = np.random.default_rng(1)
    t = torch.tensor(periodic(13, [0.5, 0.2, 0.1], [0, 1, 2], rng)[None])
    y = (t * 0.9).clone().requires_grad_(True)
    HarmonicLoss(10, -120.0)(y, t, torch.tensor([13])).backward()
    assert torch.isfinite(y.grad).all() and float(y.grad.abs().sum()) > 0
