"""Supervised contrastive loss against a brute-force loop over anchors and positives."""

import math

import numpy as np
import pytest
import torch

from aaexp.eq.contrastive import SupConLoss


def _supcon_loop(emb: np.ndarray, labels: list[int], t: float) -> float:
    """Khosla et al. 2020, eq. 2, written out with Python loops."""
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    n, losses = len(labels), []
    for i in range(n):
        pos = [p for p in range(n) if p != i and labels[p] == labels[i]]
        if not pos:
            continue
        denom = sum(math.exp(e[i] @ e[a] / t) for a in range(n) if a != i)
        losses.append(-sum(math.log(math.exp(e[i] @ e[p] / t) / denom) for p in pos) / len(pos))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("t", [0.1, 0.5])
def test_matches_the_loop(t):
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(12, 5))
    labels = [0, 0, 1, 1, 1, 2, 3, 3, 0, 2, 4, 1]  # label 4 has no positive: not an anchor
    got = SupConLoss(t)(torch.tensor(emb), torch.tensor(labels))
    assert float(got) == pytest.approx(_supcon_loop(emb, labels, t), rel=1e-10)


def test_no_positive_pair_gives_zero_with_a_gradient():
    emb = torch.randn(4, 3, requires_grad=True)
    loss = SupConLoss()(emb, torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert float(loss.detach()) == 0.0 and emb.grad is not None


def test_tight_clusters_score_lower_than_mixed_ones():
    rng = np.random.default_rng(1)
    centres = np.eye(3)[[0, 0, 0, 1, 1, 1, 2, 2, 2]]
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    tight = torch.tensor(centres + 0.01 * rng.normal(size=centres.shape))
    mixed = torch.tensor(centres[rng.permutation(9)] + 0.01 * rng.normal(size=centres.shape))
    loss = SupConLoss(0.1)
    assert float(loss(tight, labels)) < float(loss(mixed, labels))
    # perfectly tight clusters: each anchor's positives share the mass of its 2 equals -> log(2) floor
    assert float(loss(torch.tensor(centres), labels)) == pytest.approx(math.log(2), abs=1e-3)
