"""EQ training: reconstruction MSE + weighted supervised contrastive term, on the spine's training loop
(checkpoints every `trainer.checkpoint_every` epochs, so an interrupted run resumes where it stopped)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from aaexp.eq.contrastive import SupConLoss
from aaexp.training.loop import Loop, Task, series
from aaexp.training.lr_schedule import make_scheduler

CHECKPOINT = "checkpoint.pt"


def contrastive_weight(epoch: int, n_epochs: int, start: float, end: float) -> float:
    """Linear schedule: `start` at the first epoch, `end` at the last (0-based epoch)."""
    if n_epochs <= 1:
        return float(end)
    return float(start + (end - start) * epoch / (n_epochs - 1))


@dataclass
class Tensors:
    """Normalised parameters and integer labels on the training device."""

    x_train: torch.Tensor  # Tensor[N x 13]
    y_train: torch.Tensor  # Tensor[N]
    x_val: torch.Tensor    # Tensor[M x 13] (M may be 0)
    y_val: torch.Tensor    # Tensor[M]


@dataclass
class TrainResult:
    epochs_run: int
    history: dict[str, list[float]] = field(default_factory=dict)
    resumed_from: int = 0


class _EqTask(Task):
    """Reconstruction MSE + weighted supervised contrastive term, one epoch per unit."""

    def __init__(self, ctx, model, data: Tensors, loss_cfg, opt, sched):
        self.ctx, self.model, self.data, self.opt, self.sched = ctx, model, data, opt, sched
        self.loss_fn = SupConLoss(float(loss_cfg.temperature))
        self.w_recon, self.w_c = float(loss_cfg.weights.recon), loss_cfg.weights.contrastive
        self.n_epochs, self.bs = int(ctx.cfg.trainer.max_epochs), int(ctx.cfg.trainer.batch_size)
        self.val_order = torch.randperm(len(data.x_val), generator=torch.Generator().manual_seed(0)).to(data.x_val.device)
        self.w = 0.0

    def begin(self, loop, state, fresh):
        self.resumed_from = state.epoch
        if not fresh:
            self.ctx.log.info("resuming EQ training from epoch %d of %d", state.epoch, self.n_epochs)
        self.model.train()

    def items(self, unit, state):
        self.w = contrastive_weight(unit, self.n_epochs, float(self.w_c.start), float(self.w_c.end))
        perm = torch.randperm(len(self.data.x_train)).to(self.data.x_train.device)
        # a lone trailing row has nothing to contrast with
        return [idx for idx in (perm[i: i + self.bs] for i in range(0, len(perm), self.bs)) if len(idx) >= 2]

    def step(self, idx, state):
        x, y = self.data.x_train[idx], self.data.y_train[idx]
        recon, _, emb = self.model(x)
        l_rec, l_con = F.mse_loss(recon, x), self.loss_fn(emb, y)
        loss = self.w_recon * l_rec + self.w * l_con
        terms = {"recon": l_rec.detach(), "contrastive": l_con.detach()}
        self.loop.check(loss, terms, state.epoch + 1, state.step + 1)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        state.step += 1
        return {**terms, "loss": loss.detach()}   # summed on the device: one host sync per epoch

    def end_unit(self, unit, state, means, started):
        val_rec, val_con = _split_losses(self.model, self.loss_fn, self.data.x_val, self.data.y_val, self.bs, self.val_order)
        if self.sched is not None:
            # Plateau on held-out reconstruction: the total loss rises with the annealed weight by design.
            self.sched.step(val_rec if math.isfinite(val_rec) else means.get("recon", 0.0))
        row = {f"train/{k}": means.get(k, 0.0) for k in ("recon", "contrastive", "loss")}
        row.update({"train/contrastive_weight": self.w, "train/lr": self.opt.param_groups[0]["lr"],
                    "val/recon": val_rec, "val/contrastive": val_con})
        return {k: v for k, v in row.items() if math.isfinite(v)}


def _split_losses(model, loss_fn, x, y, batch_size: int, order: torch.Tensor) -> tuple[float, float]:
    """(reconstruction MSE, contrastive) of a held-out split in eval mode, in batches of the training
    size and a fixed order, so the contrastive value is comparable with the training one."""
    if len(x) == 0:
        return float("nan"), float("nan")
    model.eval()
    rec, con, n = 0.0, 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            if len(idx) < 2:
                continue
            r, _, emb = model(x[idx])
            rec, con, n = rec + float(F.mse_loss(r, x[idx])), con + float(loss_fn(emb, y[idx])), n + 1
    model.train()
    return (rec / n, con / n) if n else (float("nan"), float("nan"))


def train(ctx, model: torch.nn.Module, data: Tensors, loss_cfg) -> TrainResult:
    """Train `model` in place by `ctx.cfg.trainer` (max_epochs, batch_size, lr, lr_schedule, checkpoint_every)
    and `loss_cfg` (weights.recon, weights.contrastive.start/end, temperature); logs train/* and val/* per epoch."""
    tr = ctx.cfg.trainer
    opt = torch.optim.Adam(model.parameters(), lr=float(tr.lr))
    sched = make_scheduler(opt, tr, 0)
    task = _EqTask(ctx, model, data, loss_cfg, opt, sched)
    task.loop = Loop(ctx, model, opt, Path(ctx.out_dir) / CHECKPOINT, scheduler=sched, progress="units", desc="eq epochs")
    state, _ = task.loop.fit(task)
    model.eval()
    history = {k: [v for _, v in points] for k, points in series(state.history).items()}
    return TrainResult(state.epoch, history, task.resumed_from)
