"""Supervised contrastive loss that pulls rows with the same descriptor together."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SupConLoss(nn.Module):
    """Supervised contrastive loss, the L_out form of Khosla et al., "Supervised Contrastive
    Learning", NeurIPS 2020 (eq. 2).

    For each anchor i with at least one positive (another row with the same label):
        l_i = -1/|P(i)| * sum_{p in P(i)} log( exp(s_ip / T) / sum_{a != i} exp(s_ia / T) )
    with s the cosine similarity of the L2-normalised embeddings; the loss is the mean of l_i
    over those anchors (0 when no anchor has a positive).

    Args:
        temperature: T, default 0.1.

    Shape:
        embeddings Tensor[B x D], labels Tensor[B] (integer) -> scalar Tensor.
    """

    def __init__(self, temperature: float = 0.1):
        super().__init__()
        self.temperature = temperature

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        e = F.normalize(embeddings, dim=1)
        logits = e @ e.T / self.temperature
        self_mask = torch.eye(len(labels), dtype=torch.bool, device=e.device)
        # The anchor itself is neither a positive nor in the denominator.
        logits = logits.masked_fill(self_mask, float("-inf"))
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        pos = (labels[:, None] == labels[None, :]) & ~self_mask
        n_pos = pos.sum(dim=1)
        has_pos = n_pos > 0
        if not bool(has_pos.any()):
            return embeddings.sum() * 0.0
        per_anchor = -(log_prob.masked_fill(~pos, 0.0)).sum(dim=1)[has_pos] / n_pos[has_pos]
        return per_anchor.mean()
