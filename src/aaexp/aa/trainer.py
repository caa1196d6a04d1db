"""The anti-aliasing training loop: Adam over the tone set, validation, checkpoints, logging.

One epoch = every training tone once, in a seeded shuffled order, in batches; each batch takes one
optimiser step per truncated-BPTT frame. After each epoch: validation on the fixed validation
tones, per-epoch metrics to MLflow, a resumable checkpoint, and the best student so far kept.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from aaexp.aa import checkpoint
from aaexp.aa.data import ToneSet
from aaexp.aa.framing import Framing
from aaexp.aa.loss_mix import WHOLE_WINDOW_TERMS, AALoss, lambda_at, term_weights
from aaexp.aa.losses import ASRLoss, ESRLoss, ESRNormalLoss, db_to_power, to_db
from aaexp.aa.nmr import NMRLoss
from aaexp.aa.bandlimit import bandlimit
from aaexp.errors import AaexpError, TrainingDiverged
from aaexp.progress import bar

VAL_RATIOS = ("esr", "esr_normal", "asr", "nmr")  # validation measures, reported in dB


@dataclass
class FitResult:
    state: checkpoint.TrainState
    best_path: Path          # best student weights (state_dict)
    last_path: Path          # resumable checkpoint after the last epoch


class Trainer:
    """Fine-tunes `student` towards the bandlimited teacher targets of `train`.

    Args:
        ctx: the run context (tracker, out_dir, device, progress, log).
        student: AmpModel to train (already on the device, in the training dtype).
        train, val: tone sets with targets.
        loss_cfg, trainer_cfg: the `loss` and `trainer` config nodes; tbptt: frame length or None.
    """

    def __init__(self, ctx, student, train: ToneSet, val: ToneSet, loss_cfg: DictConfig, trainer_cfg: DictConfig,
                 tbptt: int | None, dtype: torch.dtype):
        self.ctx, self.student, self.train, self.val = ctx, student, train, val
        self.loss_cfg, self.cfg, self.dtype, self.device = loss_cfg, trainer_cfg, dtype, ctx.device
        self.max_epochs = int(trainer_cfg.max_epochs)
        self.loss = AALoss(loss_cfg, train.fs).to(self.device)
        self.framing = Framing.build(student, train.n_warmup, train.n_window, self.loss.history, tbptt)
        self.optimizer = torch.optim.Adam(student.parameters(), lr=float(trainer_cfg.lr))
        self.shuffle = torch.Generator().manual_seed(int(ctx.cfg.get("seed") or 0))
        self.ckpt_dir = Path(ctx.out_dir) / "checkpoints"
        # Validation loss uses the weights λ ends at, so epochs compare on one scale under a curriculum.
        self.val_weights = term_weights(loss_cfg, lambda_at(loss_cfg, self.max_epochs, self.max_epochs))
        self.best_metric = str(trainer_cfg.best_metric)
        self.esr, self.esr_normal, self.asr = (ESRLoss(reduction="none"), ESRNormalLoss(reduction="none"),
                                               ASRLoss(reduction="none"))
        self.nmr = NMRLoss(train.fs, reduction="none").to(self.device)
        self._check_terms()

    def _check_terms(self) -> None:
        used = {t for e in range(self.max_epochs + 1)
                for t, w in term_weights(self.loss_cfg, lambda_at(self.loss_cfg, e, self.max_epochs)).items() if w}
        whole = sorted(used & WHOLE_WINDOW_TERMS)
        if whole and not self.framing.whole_window:
            raise AaexpError(f"loss term(s) {whole} need the whole loss window in one step, but truncated BPTT "
                             f"splits it into {len(self.framing.frames)} frames; set model.tbptt.lstm=null")

    # -- one batch ---------------------------------------------------------------------------------
    def train_batch(self, idx: torch.Tensor, weights: dict[str, float], state: checkpoint.TrainState) -> dict[str, float]:
        """One optimiser step per frame on tones `idx`; returns the frame-averaged weighted terms."""
        x = self.train.inputs(idx, self.dtype, self.device, start=self.framing.input_start)
        targets = self.framing.target_frames(self.train.targets(idx, self.dtype, self.device))
        m = self.train.m[idx].to(self.device)
        sums: dict[str, float] = {}
        for k, y in enumerate(self.framing.student_frames(self.student, x)):
            total, terms = self.loss(y, targets[k], m, weights)
            value = float(total.detach())
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"loss became {value} at epoch {state.epoch + 1}, step {state.step + 1} "
                    f"({', '.join(f'{n}={float(v.detach()):.3g}' for n, v in terms.items())}); "
                    f"last good checkpoint: {self.ckpt_dir / checkpoint.LAST}")
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            self.optimizer.step()
            state.step += 1
            sums["loss"] = sums.get("loss", 0.0) + value
            for n, v in terms.items():
                sums[n] = sums.get(n, 0.0) + float(v.detach())
        return {n: v / len(self.framing.frames) for n, v in sums.items()}

    # -- validation --------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """val/loss (pre-emphasised mix at the final λ) and ESR, ESR-normal, ASR, NMR in dB over the val tones.

        ESR compares BL(student) with the target (harmonics only), esr_normal the raw output; the
        per-tone power ratios are averaged, then put in dB (`_db`), and the worst tone is `_max_db`.
        """
        self.student.eval()
        per_tone: dict[str, list[torch.Tensor]] = {k: [] for k in VAL_RATIOS}
        loss_sum, bs = 0.0, int(self.cfg.val_batch_size)
        for i in range(0, len(self.val), bs):
            idx = torch.arange(i, min(i + bs, len(self.val)))
            x = self.val.inputs(idx, self.dtype, self.device, start=self.framing.input_start)
            t = self.val.targets(idx, self.dtype, self.device)
            m = self.val.m[idx].to(self.device)
            y_ext = self.framing.student_window(self.student, x)
            t_ext = torch.cat([t[:, t.shape[-1] - self.loss.history:], t], -1) if self.loss.history else t
            loss, _ = self.loss(y_ext, t_ext, m, self.val_weights)
            loss_sum += float(loss) * len(idx)
            y = y_ext[:, self.loss.history:]
            per_tone["esr"].append(self.esr(bandlimit(y, m), t))
            per_tone["esr_normal"].append(self.esr_normal(y, t))
            per_tone["asr"].append(self.asr(y, m))
            per_tone["nmr"].append(db_to_power(self.nmr(y, t)))
        self.student.train()
        out = {"val/loss": loss_sum / len(self.val)}
        for k, parts in per_tone.items():
            v = torch.cat(parts)
            out[f"val/{k}_db"] = float(to_db(v.mean()))
            out[f"val/{k}_max_db"] = float(to_db(v.max()))
        return out

    # -- the loop ----------------------------------------------------------------------------------
    def _resume_state(self) -> checkpoint.TrainState | None:
        path = self.ckpt_dir / checkpoint.LAST
        if not self.ctx.resumed:
            return None
        if not path.is_file():
            self.ctx.log.warning("resume: no checkpoint in %s yet; training from the start", self.ckpt_dir)
            return None
        state = checkpoint.load(path, self.student, self.optimizer, self.shuffle)
        self.ctx.log.info("resumed from %s after epoch %d of %d", path, state.epoch, self.max_epochs)
        self._relog_missing(state)
        return state

    def _relog_missing(self, state: checkpoint.TrainState) -> None:
        """Log epochs that reached the checkpoint but not MLflow (the run died in between)."""
        try:
            logged = {m.step for m in self.ctx.tracker.client.get_metric_history(self.ctx.tracker.run_id, "val/loss")}
        except Exception:  # a tracker without history: log nothing twice rather than guess
            return
        for h in state.history:
            if h["epoch"] not in logged:
                self.ctx.tracker.log_metrics({k: v for k, v in h.items() if k != "epoch"}, step=h["epoch"])

    def _save_best(self, state: checkpoint.TrainState, metrics: dict[str, float], epoch: int) -> None:
        if self.best_metric not in metrics:
            raise AaexpError(f"trainer.best_metric={self.best_metric!r} is not a validation metric; "
                             f"choose from {sorted(metrics)}")
        value = metrics[self.best_metric]
        if math.isfinite(value) and value < state.best_value:
            state.best_value, state.best_epoch = value, epoch
            checkpoint.atomic_save({"student": self.student.state_dict(), "epoch": epoch, self.best_metric: value},
                                   self.ckpt_dir / checkpoint.BEST)

    def fit(self) -> FitResult:
        tracker, log = self.ctx.tracker, self.ctx.log
        state = self._resume_state()
        if state is None:
            state = checkpoint.TrainState()
            metrics = self.validate()
            tracker.log_metrics(metrics, step=0)
            state.history.append({"epoch": 0, **metrics})
            self._save_best(state, metrics, 0)
            log.info("epoch 0 (untrained): %s", _fmt(metrics))
        bs, every = int(self.cfg.batch_size), int(self.cfg.get("log_every_n_steps") or 0)
        for epoch in range(state.epoch, self.max_epochs):
            lam = lambda_at(self.loss_cfg, epoch, self.max_epochs)
            weights = term_weights(self.loss_cfg, lam)
            perm = torch.randperm(len(self.train), generator=self.shuffle)
            t0, sums, n_batches = time.perf_counter(), {}, 0
            batches = bar(range(0, len(perm), bs), enabled=self.ctx.progress, desc=f"epoch {epoch + 1}/{self.max_epochs}")
            for i in batches:
                terms = self.train_batch(perm[i: i + bs], weights, state)
                n_batches += 1
                for n, v in terms.items():
                    sums[n] = sums.get(n, 0.0) + v
                if every and state.step % every < len(self.framing.frames):
                    tracker.log_metrics({"train/loss_step": terms["loss"]}, step=state.step)
                batches.set_postfix(loss=f"{terms['loss']:.4g}")
            train_s = time.perf_counter() - t0
            metrics = {f"train/{n}": v / n_batches for n, v in sums.items()}
            metrics.update(self.validate())
            metrics.update({f"weight/{n}": w for n, w in weights.items() if w})
            metrics.update({"lambda": lam,  # None (explicit weights) is not logged
                            "lr": self.optimizer.param_groups[0]["lr"],
                            "perf/epoch_s": time.perf_counter() - t0, "perf/train_s": train_s,
                            "perf/samples_per_s": len(perm) / train_s})
            state.epoch = epoch + 1
            state.history.append({"epoch": state.epoch, **metrics})
            self._save_best(state, metrics, state.epoch)
            checkpoint.save(self.ckpt_dir / checkpoint.LAST, self.student, self.optimizer, state, self.shuffle)
            tracker.log_metrics(metrics, step=state.epoch)
            log.info("epoch %d/%d: %s", state.epoch, self.max_epochs, _fmt(metrics))
        return FitResult(state, self.ckpt_dir / checkpoint.BEST, self.ckpt_dir / checkpoint.LAST)


def _fmt(metrics: dict[str, float]) -> str:
    keys = ("train/loss", "val/loss", "val/nmr_db", "val/asr_db", "val/esr_db", "lambda", "perf/epoch_s")
    return " ".join(f"{k}={metrics[k]:.4g}" for k in keys if metrics.get(k) is not None)
