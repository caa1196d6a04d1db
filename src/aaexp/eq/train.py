"""The training loop: reconstruction MSE + weighted supervised contrastive term, checkpointed each
few epochs so an interrupted run resumes where it stopped."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from aaexp.eq.contrastive import SupConLoss
from aaexp.errors import AaexpError, TrainingDiverged
from aaexp.progress import bar

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


def _scheduler(opt, spec):
    if spec is None:
        return None
    return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=float(spec.factor), patience=int(spec.patience))


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


def train(ctx, model: torch.nn.Module, data: Tensors, recipe, loss_cfg, n_epochs: int, checkpoint_every: int) -> TrainResult:
    """Train `model` in place for `n_epochs` with `recipe` (batch_size, lr, scheduler) and `loss_cfg`
    (weights.recon, weights.contrastive.start/end, temperature); logs train/* and val/* per epoch."""
    if n_epochs < 1 or int(recipe.batch_size) < 2:
        raise AaexpError(f"epochs ({n_epochs}) must be >= 1 and model.recipe.batch_size >= 2")
    opt = torch.optim.Adam(model.parameters(), lr=float(recipe.lr))
    sched = _scheduler(opt, recipe.scheduler)
    loss_fn = SupConLoss(float(loss_cfg.temperature))
    w_recon, w_c = float(loss_cfg.weights.recon), loss_cfg.weights.contrastive
    ckpt = Path(ctx.out_dir) / CHECKPOINT
    history: dict[str, list[float]] = {}
    start = 0
    if ctx.resumed and ckpt.is_file():
        state = torch.load(ckpt, map_location=ctx.device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None and state.get("scheduler"):
            sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        start, history = state["epoch"], state["history"]
        ctx.log.info("resuming EQ training from epoch %d of %d (%s)", start, n_epochs, ckpt)

    n, bs = len(data.x_train), int(recipe.batch_size)
    val_order = torch.randperm(len(data.x_val), generator=torch.Generator().manual_seed(0)).to(data.x_val.device)
    model.train()
    for epoch in bar(range(start, n_epochs), enabled=ctx.progress, desc="eq epochs", initial=start, total=n_epochs):
        w = contrastive_weight(epoch, n_epochs, float(w_c.start), float(w_c.end))
        perm = torch.randperm(n).to(data.x_train.device)
        sums = {k: torch.zeros((), device=data.x_train.device) for k in ("recon", "contrastive", "loss")}
        n_batches = 0
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            if len(idx) < 2:  # a lone trailing row has nothing to contrast with
                continue
            x, y = data.x_train[idx], data.y_train[idx]
            recon, _, emb = model(x)
            l_rec, l_con = F.mse_loss(recon, x), loss_fn(emb, y)
            loss = w_recon * l_rec + w * l_con
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for k, v in (("recon", l_rec), ("contrastive", l_con), ("loss", loss)):
                sums[k] += v.detach()  # summed on the device: one host sync per epoch, not per step
            n_batches += 1
        sums = {k: float(v) for k, v in sums.items()}
        if not math.isfinite(sums["loss"]):
            raise TrainingDiverged(f"EQ training diverged in epoch {epoch + 1} (loss {sums['loss']}); last checkpoint: {ckpt}")
        val_rec, val_con = _split_losses(model, loss_fn, data.x_val, data.y_val, bs, val_order)
        if sched is not None:
            # Plateau on held-out reconstruction: the total loss rises with the annealed weight by design.
            sched.step(val_rec if math.isfinite(val_rec) else sums["recon"] / max(n_batches, 1))
        row = {f"train/{k}": v / max(n_batches, 1) for k, v in sums.items()}
        row.update({"train/contrastive_weight": w, "train/lr": opt.param_groups[0]["lr"], "val/recon": val_rec, "val/contrastive": val_con})
        row = {k: v for k, v in row.items() if math.isfinite(v)}
        ctx.tracker.log_metrics(row, step=epoch + 1)
        for k, v in row.items():
            history.setdefault(k, []).append(v)
        if (epoch + 1) % max(int(checkpoint_every), 1) == 0 or epoch + 1 == n_epochs:
            _save(ckpt, model, opt, sched, epoch + 1, history)
    model.eval()
    return TrainResult(n_epochs, history, start)


def _save(path: Path, model, opt, sched, epoch: int, history) -> None:
    """Write atomically so a kill mid-write leaves the previous checkpoint intact."""
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict() if sched else None,
                "rng": torch.get_rng_state(), "epoch": epoch, "history": history}, tmp)
    tmp.replace(path)
