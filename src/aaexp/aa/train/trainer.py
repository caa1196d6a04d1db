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

from aaexp.aa.loss.mix import WHOLE_WINDOW_TERMS, AALoss, lambda_at, term_weights
from aaexp.aa.loss.nmr import NMRLoss
from aaexp.aa.loss.ratio import ASRLoss, ESRLoss, ESRNormalLoss, db_to_power, to_db
from aaexp.aa.signal.bandlimit import bandlimit
from aaexp.aa.train import checkpoint
from aaexp.aa.train.data import ToneSet
from aaexp.aa.train.divergence import DivergenceWatch, last_good
from aaexp.aa.train.framing import Framing
from aaexp.aa.train.lr_schedule import make_scheduler, per_update
from aaexp.aa.train.target_watch import TargetWatch
from aaexp.errors import AaexpError, TrainingDiverged
from aaexp.progress import bar

VAL_RATIOS = ("esr", "esr_normal", "asr", "nmr")  # validation measures, reported in dB
TARGET = "target.pt"     # the first student that met the target (weights only)


@dataclass
class FitResult:
    state: checkpoint.TrainState
    best_path: Path          # best student weights (state_dict)
    last_path: Path          # resumable checkpoint after the last epoch
    target_path: Path | None = None   # the first student that met the target (None: never met)


class Trainer:
    """Fine-tunes `student` towards the bandlimited teacher targets of `train`.

    Args:
        ctx: the run context (tracker, out_dir, device, progress, log).
        student: AmpModel to train (already on the device, in the training dtype).
        train, val: tone sets with targets.
        loss_cfg, trainer_cfg: the `loss` and `trainer` config nodes; tbptt: frame length or None.
    """

    def __init__(self, ctx, student, train: ToneSet, val: ToneSet, loss_cfg: DictConfig, trainer_cfg: DictConfig,
                 tbptt: int | None, dtype: torch.dtype, watch: TargetWatch | None = None):
        self.ctx, self.student, self.train, self.val = ctx, student, train, val
        self.loss_cfg, self.cfg, self.dtype, self.device = loss_cfg, trainer_cfg, dtype, ctx.device
        self.max_epochs = int(trainer_cfg.max_epochs)
        self.loss = AALoss(loss_cfg, train.fs).to(self.device)
        self.framing = Framing.build(student, train.n_warmup, train.n_window, self.loss.history, tbptt)
        self.optimizer = torch.optim.Adam(student.parameters(), lr=float(trainer_cfg.lr))
        self.shuffle = torch.Generator().manual_seed(int(ctx.cfg.get("seed") or 0))
        self.ckpt_dir = Path(ctx.out_dir) / "checkpoints"
        self.divergence = DivergenceWatch.from_cfg(trainer_cfg, ctx, self.ckpt_dir)
        # Validation loss uses the weights λ ends at, so epochs compare on one scale under a curriculum.
        self.val_weights = term_weights(loss_cfg, lambda_at(loss_cfg, self.max_epochs, self.max_epochs))
        self.best_metric = str(trainer_cfg.best_metric)
        self.esr, self.esr_normal, self.asr = (ESRLoss(reduction="none"), ESRNormalLoss(reduction="none"),
                                               ASRLoss(reduction="none"))
        self.nmr = NMRLoss(train.fs, reduction="none").to(self.device)
        self._check_terms()
        bs = int(trainer_cfg.batch_size)
        self.updates_per_epoch = math.ceil(len(train) / bs) * len(self.framing.frames)
        self.watch = watch
        self.sync_each_step = self.device.type == "cpu"   # a CPU float() costs nothing; a GPU one stalls the loop
        self._pending: list = []
        max_time = trainer_cfg.get("max_time_s")
        self.max_time_s = None if max_time in (None, 0) else float(max_time)
        self.started = float(getattr(ctx, "started", None) or time.perf_counter())
        self.wall_offset = 0.0   # wall seconds before this process (a resumed run's earlier life)
        by_time = None if self.max_time_s is None else (lambda: self.wall_s() / self.max_time_s)
        self.scheduler = make_scheduler(self.optimizer, trainer_cfg, self.max_epochs * self.updates_per_epoch, by_time)

    def _check_terms(self) -> None:
        used = {t for e in range(self.max_epochs + 1)
                for t, w in term_weights(self.loss_cfg, lambda_at(self.loss_cfg, e, self.max_epochs)).items() if w}
        whole = sorted(used & WHOLE_WINDOW_TERMS)
        if whole and not self.framing.whole_window:
            raise AaexpError(f"loss term(s) {whole} need the whole loss window in one step, but truncated BPTT "
                             f"splits it into {len(self.framing.frames)} frames; set model.tbptt.lstm=null")

    # -- one batch ---------------------------------------------------------------------------------
    def train_batch(self, idx: torch.Tensor, weights: dict[str, float], state: checkpoint.TrainState) -> dict:
        """One optimiser step per frame on tones `idx`; returns the frame-averaged weighted terms.

        On the CPU the values are floats, checked (NaN, divergence) after every step. On a GPU they stay
        tensors on the device and are checked in bulk by `flush()` (every `log_every_n_steps` and at the
        end of each epoch), so the hot loop never waits for the device.
        """
        x = self.train.inputs(idx, self.dtype, self.device, start=self.framing.input_start)
        targets = self.framing.target_frames(self.train.targets(idx, self.dtype, self.device))
        m = self.train.m[idx].to(self.device)
        sums: dict = {}
        for k, y in enumerate(self.framing.student_frames(self.student, x)):
            total, terms = self.loss(y, targets[k], m, weights)
            if self.sync_each_step:
                self._check(float(total.detach()), terms, state.epoch + 1, state.step + 1)
            else:
                self._pending.append((state.epoch + 1, state.step + 1, total.detach(), terms))
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            self.optimizer.step()
            if per_update(self.scheduler) and self.scheduler.last_epoch < getattr(self.scheduler, "total_steps", math.inf) - 1:
                self.scheduler.step()
            state.step += 1
            sums["loss"] = sums.get("loss", 0.0) + total.detach()
            for n, v in terms.items():
                sums[n] = sums.get(n, 0.0) + v.detach()
        out = {n: v / len(self.framing.frames) for n, v in sums.items()}
        return {n: float(v) for n, v in out.items()} if self.sync_each_step else out

    def _check(self, value: float, terms: dict, epoch: int, step: int) -> None:
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"loss became {value} at epoch {epoch}, step {step} "
                f"({', '.join(f'{n}={float(v.detach()):.3g}' for n, v in terms.items())}); "
                f"{last_good(self.ckpt_dir)}")
        self.divergence.check(value, epoch, step)

    def flush(self) -> None:
        """Check the losses of the steps not yet checked (GPU: one device sync for all of them)."""
        if not self._pending:
            return
        values = torch.stack([p[2] for p in self._pending]).tolist()
        pending, self._pending = self._pending, []
        for (epoch, step, _, terms), value in zip(pending, values):
            self._check(value, terms, epoch, step)

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
        state = checkpoint.load(path, self.student, self.optimizer, self.shuffle, self.scheduler)
        self.wall_offset = state.wall_s
        self.ctx.log.info("resumed from %s after epoch %d of %d (%d updates, %.0f s)", path, state.epoch,
                          self.max_epochs, state.step, state.wall_s)
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

    def _check_best_metric(self, metrics: dict[str, float]) -> None:
        from_watch = self.best_metric.startswith("eval/") and self.watch is not None and self.watch.enabled
        if self.best_metric not in metrics and not from_watch:
            raise AaexpError(f"trainer.best_metric={self.best_metric!r} is not a validation metric; choose from "
                             f"{sorted(metrics)} (or eval/excess_db with trainer.eval_every_s or eval_every_n)")

    def _save_best(self, state: checkpoint.TrainState, metrics: dict[str, float], epoch: int) -> None:
        value = metrics.get(self.best_metric)
        if value is not None and math.isfinite(value) and value < state.best_value:
            state.best_value, state.best_epoch, state.best_step = value, epoch, state.step
            checkpoint.atomic_save({"student": self.student.state_dict(), "epoch": epoch, "step": state.step,
                                    self.best_metric: value}, self.ckpt_dir / checkpoint.BEST)

    def wall_s(self) -> float:
        """Wall seconds since the start of `aaexp train` (plus a resumed run's earlier time)."""
        return self.wall_offset + time.perf_counter() - self.started

    def _watch(self, state: checkpoint.TrainState) -> bool:
        """In-training evaluation against the target; True when training should stop here."""
        tracker, log = self.ctx.tracker, self.ctx.log
        self.flush()   # a NaN must stop the run, not be scored
        result, metrics = self.watch.score(self.student)
        state.wall_s = self.wall_s()
        metrics.update({"perf/wall_s": state.wall_s, "perf/tones_seen": float(state.tones_seen)})
        tracker.log_metrics(metrics, step=state.step)
        self._save_best(state, metrics, state.epoch)
        passed = metrics["eval/pass"] > 0
        log.info("eval at %d updates, %.0f s: worst band %+.1f dB from the target%s", state.step, state.wall_s,
                 metrics["eval/excess_db"], " - target met" if passed else "")
        if passed and state.target_step is None:
            state.target_step, state.target_wall_s, state.target_tones = state.step, state.wall_s, state.tones_seen
            checkpoint.atomic_save({"student": self.student.state_dict(), "epoch": state.epoch, "step": state.step},
                                   self.ckpt_dir / TARGET)
            at_target = {"perf/time_to_target_s": state.wall_s, "perf/updates_to_target": float(state.step),
                         "perf/tones_to_target": float(state.tones_seen)}
            at_target.update({f"target/{k[len('eval/'):]}": v for k, v in metrics.items()
                              if k.startswith(("eval/nmr_s/", "eval/hesr_r/"))})
            tracker.log_metrics(at_target, step=state.step)
            tracker.set_tags({"time_to_target_s": f"{state.wall_s:.0f}"})
            print(f"target met after {state.wall_s:.0f} s ({state.step} updates, {state.tones_seen} tones):\n"
                  f"{result.format_table()}", flush=True)
        self.watch.restart(state.step)
        return passed and self.watch.stop_at_target

    def _out_of_time(self) -> bool:
        return self.max_time_s is not None and self.wall_s() >= self.max_time_s

    def fit(self) -> FitResult:
        tracker, log = self.ctx.tracker, self.ctx.log
        state = self._resume_state()
        watch = self.watch if self.watch is not None and self.watch.enabled else None
        if state is None:
            state = checkpoint.TrainState()
            metrics = self.validate()
            self._check_best_metric(metrics)
            tracker.log_metrics(metrics, step=0)
            state.history.append({"epoch": 0, **metrics})
            self._save_best(state, metrics, 0)
            log.info("epoch 0 (untrained): %s", _fmt(metrics))
            if watch is not None and watch.at_start and self._watch(state):
                return self._finish(state, stopped="target")
        bs, every = int(self.cfg.batch_size), int(self.cfg.get("log_every_n_steps") or 0)
        if watch is not None:
            watch.restart(state.step)
        stopped = None
        for epoch in range(state.epoch, self.max_epochs):
            lam = lambda_at(self.loss_cfg, epoch, self.max_epochs)
            weights = term_weights(self.loss_cfg, lam)
            perm = torch.randperm(len(self.train), generator=self.shuffle)
            t0, sums, n_batches, n_tones = time.perf_counter(), {}, 0, 0
            batches = bar(range(0, len(perm), bs), enabled=self.ctx.progress, desc=f"epoch {epoch + 1}/{self.max_epochs}")
            for i in batches:
                idx = perm[i: i + bs]
                terms = self.train_batch(idx, weights, state)
                state.tones_seen += len(idx)
                n_tones += len(idx)
                n_batches += 1
                for n, v in terms.items():
                    sums[n] = sums.get(n, 0.0) + v
                if every and state.step % every < len(self.framing.frames):
                    self.flush()
                    tracker.log_metrics({"train/loss_step": float(terms["loss"]), "perf/wall_s": self.wall_s()},
                                        step=state.step)
                if self.sync_each_step:
                    batches.set_postfix(loss=f"{terms['loss']:.4g}")
                if watch is not None and watch.due(state.step) and self._watch(state):
                    stopped = "target"
                    break
                if self._out_of_time():
                    stopped = "time"
                    break
            if stopped and n_batches == 0:
                break
            self.flush()
            train_s = time.perf_counter() - t0
            metrics = {f"train/{n}": float(v) / n_batches for n, v in sums.items()}
            metrics.update(self.validate())
            metrics.update({f"weight/{n}": w for n, w in weights.items() if w})
            metrics.update({"lambda": lam,  # None (explicit weights) is not logged
                            "lr": self.optimizer.param_groups[0]["lr"],
                            "perf/epoch_s": time.perf_counter() - t0, "perf/train_s": train_s,
                            "perf/samples_per_s": n_tones / train_s, "perf/updates": float(state.step)})
            if self.scheduler is not None and not per_update(self.scheduler):
                self.scheduler.step(metrics["val/loss"])
            state.epoch = epoch + 1
            state.wall_s = self.wall_s()
            state.history.append({"epoch": state.epoch, **metrics})
            self._save_best(state, metrics, state.epoch)
            checkpoint.save(self.ckpt_dir / checkpoint.LAST, self.student, self.optimizer, state, self.shuffle,
                            self.scheduler)
            tracker.log_metrics(metrics, step=state.epoch)
            log.info("epoch %d/%d: %s", state.epoch, self.max_epochs, _fmt(metrics))
            if stopped:
                break
        return self._finish(state, stopped)

    def _finish(self, state: checkpoint.TrainState, stopped: str | None) -> FitResult:
        if stopped == "target":
            self.ctx.log.info("stopped at the target after %d updates (trainer.stop_at_target)", state.step)
        elif stopped == "time":
            self.ctx.log.info("stopped after trainer.max_time_s=%g s (%d updates)", self.max_time_s, state.step)
        if self.watch is not None and self.watch.enabled and state.target_step is None:
            self.ctx.log.info("the target was not met in %d updates (%.0f s)", state.step, self.wall_s())
        if not (self.ckpt_dir / checkpoint.BEST).is_file():  # best_metric never measured (eval/* with no evaluation yet)
            self.ctx.log.warning("trainer.best_metric=%s was never measured: the last student is kept as the best",
                                 self.best_metric)
            state.best_epoch, state.best_step = state.epoch, state.step
            checkpoint.atomic_save({"student": self.student.state_dict(), "epoch": state.epoch, "step": state.step},
                                   self.ckpt_dir / checkpoint.BEST)
        target = self.ckpt_dir / TARGET if state.target_step is not None else None
        return FitResult(state, self.ckpt_dir / checkpoint.BEST, self.ckpt_dir / checkpoint.LAST, target)


def _fmt(metrics: dict[str, float]) -> str:
    keys = ("train/loss", "val/loss", "val/nmr_db", "val/asr_db", "val/esr_db", "lambda", "perf/epoch_s")
    return " ".join(f"{k}={metrics[k]:.4g}" for k in keys if metrics.get(k) is not None)
