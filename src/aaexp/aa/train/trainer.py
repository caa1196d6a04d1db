"""The anti-aliasing training task: Adam over the tone set, validation, the time budget and target watch.

One epoch = every training tone once, in a seeded shuffled order, in batches; each batch takes one
optimiser step per truncated-BPTT frame. After each epoch: validation on the fixed validation
tones. The life cycle around it (checkpoints, resume, best student, NaN/divergence guard, logging,
progress) is the spine's `aaexp.training.loop.Loop`.
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
from aaexp.aa.train.data import ToneSet
from aaexp.aa.train.framing import Framing
from aaexp.aa.train.target_watch import TargetWatch
from aaexp.core.errors import AaexpError
from aaexp.training.loop import Loop, LoopState, Task
from aaexp.training.lr_schedule import make_scheduler, per_update

VAL_RATIOS = ("esr", "esr_normal", "asr", "nmr")  # validation measures, reported in dB
SAMPLING = ("uniform", "difficulty")
LAST, BEST, TARGET = "last.pt", "best.pt", "target.pt"   # in <run>/checkpoints: resumable; best and first at-target weights


@dataclass
class TrainState(LoopState):
    """The loop's counters plus the anti-aliasing study's own."""

    tones_seen: int = 0            # training tones through the student (counted once per batch)
    target_step: int | None = None        # updates at the first evaluation that met the target
    target_wall_s: float | None = None    # time to target
    target_tones: int | None = None
    confirm_failures: int = 0             # full-grid passes the confirmation grid did not confirm
    difficulty: list[float] | None = None  # per training tone: its NMR (dB) when last trained on (NaN: not yet)


@dataclass
class FitResult:
    state: TrainState
    best_path: Path          # best student weights (state_dict)
    last_path: Path          # resumable checkpoint after the last epoch
    target_path: Path | None = None   # the first student that met the target (None: never met)


class Trainer(Task):
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
        decay = trainer_cfg.get("ema_decay")
        # An exponential moving average of the weights is what gets scored and exported (the last iterate is noisy).
        self.averaged = None if decay in (None, 0) else torch.optim.swa_utils.AveragedModel(
            student, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(float(decay)))
        self.scored = student if self.averaged is None else self.averaged.module
        self.sampling = trainer_cfg.sampling
        if str(self.sampling.kind) not in SAMPLING:
            raise AaexpError(f"trainer.sampling.kind={self.sampling.kind!r} is not one of {', '.join(SAMPLING)}")
        self.shuffle = torch.Generator().manual_seed(int(ctx.cfg.get("seed") or 0))
        self.ckpt_dir = Path(ctx.out_dir) / "checkpoints"
        # Validation loss uses the weights λ ends at, so epochs compare on one scale under a curriculum.
        self.val_weights = term_weights(loss_cfg, lambda_at(loss_cfg, self.max_epochs, self.max_epochs))
        self.best_metric = str(trainer_cfg.best_metric)
        self.esr, self.esr_normal, self.asr = (ESRLoss(reduction="none"), ESRNormalLoss(reduction="none"),
                                               ASRLoss(reduction="none"))
        self.nmr = NMRLoss(train.fs, reduction="none").to(self.device)
        self._check_terms()
        self.updates_per_epoch = math.ceil(len(train) / int(trainer_cfg.batch_size)) * len(self.framing.frames)
        self.watch = watch if watch is not None and watch.enabled else None
        max_time = trainer_cfg.get("max_time_s")
        self.max_time_s = None if max_time in (None, 0) else float(max_time)
        self.loop = Loop(ctx, student, self.optimizer, self.ckpt_dir / LAST, state_cls=TrainState,
                         generators={"shuffle": self.shuffle}, best_path=self.ckpt_dir / BEST, desc="epoch",
                         averaged=self.averaged)
        # The loop's clock exists first: a schedule over wall time reads it as soon as it is built.
        by_time = None if self.max_time_s is None else (lambda: self.loop.wall_s() / self.max_time_s)
        self.scheduler = self.loop.scheduler = make_scheduler(self.optimizer, trainer_cfg,
                                                              self.max_epochs * self.updates_per_epoch, by_time)
        self.weights: dict[str, float] = {}
        self.lam = None

    def _check_terms(self) -> None:
        used = {t for e in range(self.max_epochs + 1)
                for t, w in term_weights(self.loss_cfg, lambda_at(self.loss_cfg, e, self.max_epochs)).items() if w}
        whole = sorted(used & WHOLE_WINDOW_TERMS)
        if whole and not self.framing.whole_window:
            raise AaexpError(f"loss term(s) {whole} need the whole loss window in one step, but truncated BPTT "
                             f"splits it into {len(self.framing.frames)} frames; set model.tbptt.lstm=null")

    # -- one batch ---------------------------------------------------------------------------------
    def train_batch(self, idx: torch.Tensor, weights: dict[str, float], state: TrainState) -> dict:
        """One optimiser step per frame on tones `idx`; returns the frame-averaged weighted terms
        (floats on the CPU; tensors on a GPU, checked in bulk by the loop's guard)."""
        x = self.train.inputs(idx, self.dtype, self.device, start=self.framing.input_start)
        targets = self.framing.target_frames(self.train.targets(idx, self.dtype, self.device))
        m = self.train.m[idx].to(self.device)
        sums: dict = {}
        nmr_db = []
        for k, y in enumerate(self.framing.student_frames(self.student, x)):
            self.loss.last_nmr_db = None
            total, terms = self.loss(y, targets[k], m, weights)
            if self.loss.last_nmr_db is not None:
                nmr_db.append(self.loss.last_nmr_db)
            self.loop.check(total, terms, state.epoch + 1, state.step + 1)
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            self.optimizer.step()
            if self.averaged is not None:
                self.averaged.update_parameters(self.student)
            if per_update(self.scheduler) and self.scheduler.last_epoch < getattr(self.scheduler, "total_steps", math.inf) - 1:
                self.scheduler.step()
            state.step += 1
            sums["loss"] = sums.get("loss", 0.0) + total.detach()
            for n, v in terms.items():
                sums[n] = sums.get(n, 0.0) + v.detach()
        if nmr_db and state.difficulty is not None and str(self.sampling.kind) == "difficulty":   # .tolist() syncs a GPU
            for i, v in zip(idx.tolist(), torch.stack(nmr_db).mean(0).tolist()):
                state.difficulty[i] = v
        out = {n: v / len(self.framing.frames) for n, v in sums.items()}
        return {n: float(v) for n, v in out.items()} if self.loop.sync_each_step else out

    # -- validation --------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """val/loss (pre-emphasised mix at the final λ) and ESR, ESR-normal, ASR, NMR in dB over the val tones.

        ESR compares BL(student) with the target (harmonics only), esr_normal the raw output; the
        per-tone power ratios are averaged, then put in dB (`_db`), and the worst tone is `_max_db`.
        """
        model = self.scored
        model.eval()
        per_tone: dict[str, list[torch.Tensor]] = {k: [] for k in VAL_RATIOS}
        loss_sum, bs = 0.0, int(self.cfg.val_batch_size)
        for i in range(0, len(self.val), bs):
            idx = torch.arange(i, min(i + bs, len(self.val)))
            x = self.val.inputs(idx, self.dtype, self.device, start=self.framing.input_start)
            t = self.val.targets(idx, self.dtype, self.device)
            m = self.val.m[idx].to(self.device)
            y_ext = self.framing.student_window(model, x)
            t_ext = torch.cat([t[:, t.shape[-1] - self.loss.history:], t], -1) if self.loss.history else t
            loss, _ = self.loss(y_ext, t_ext, m, self.val_weights)
            loss_sum += float(loss) * len(idx)
            y = y_ext[:, self.loss.history:]
            per_tone["esr"].append(self.esr(bandlimit(y, m), t))
            per_tone["esr_normal"].append(self.esr_normal(y, t))
            per_tone["asr"].append(self.asr(y, m))
            per_tone["nmr"].append(db_to_power(self.nmr(y, t)))
        model.train()
        out = {"val/loss": loss_sum / len(self.val)}
        for k, parts in per_tone.items():
            v = torch.cat(parts)
            out[f"val/{k}_db"] = float(to_db(v.mean()))
            out[f"val/{k}_max_db"] = float(to_db(v.max()))
        return out

    # -- the task's hooks --------------------------------------------------------------------------
    def begin(self, loop: Loop, state: TrainState, fresh: bool) -> str | None:
        """Fresh: score the untrained copy (epoch 0), and at the target watch's start; resumed: go on."""
        if fresh:
            metrics = self.validate()
            self._check_best_metric(metrics)
            self.ctx.tracker.log_metrics(metrics, step=0)
            loop.record(state, metrics, 0)
            self.ctx.log.info("epoch 0 (untrained): %s", _fmt(metrics))
            if self.watch is not None and self.watch.at_start and self._watch(state):
                return "target"
        if self.watch is not None:
            self.watch.restart(state.step)
        if state.difficulty is None:
            state.difficulty = [math.nan] * len(self.train)
        return None

    def items(self, unit: int, state: TrainState):
        self.lam = lambda_at(self.loss_cfg, unit, self.max_epochs)
        self.weights = term_weights(self.loss_cfg, self.lam)
        self.tones_at_start = state.tones_seen
        perm = self._draw(unit, state)
        bs = int(self.cfg.batch_size)
        return [perm[i: i + bs] for i in range(0, len(perm), bs)]

    def _draw(self, unit: int, state: TrainState) -> torch.Tensor:
        sp = self.sampling
        kind = str(sp.kind) if unit > 0 else "uniform"   # the first epoch sees every tone once
        return draw_order(len(self.train), state.difficulty, kind, float(sp.mix), float(sp.floor_db), self.shuffle)

    def step(self, idx: torch.Tensor, state: TrainState) -> dict:
        terms = self.train_batch(idx, self.weights, state)
        state.tones_seen += len(idx)
        return terms

    def after_item(self, state: TrainState) -> str | None:
        if self.watch is not None and self.watch.due(state.step) and self._watch(state):
            return "target"
        if self.max_time_s is not None and self.loop.wall_s() >= self.max_time_s:
            return "time"
        return None

    def end_unit(self, unit: int, state: TrainState, means: dict[str, float], started: float) -> dict[str, float]:
        train_s = time.perf_counter() - started
        metrics = {f"train/{n}": v for n, v in means.items()}
        metrics.update(self.validate())
        metrics.update({f"weight/{n}": w for n, w in self.weights.items() if w})
        metrics.update({"lambda": self.lam,  # None (explicit weights) is not logged
                        "lr": self.optimizer.param_groups[0]["lr"],
                        "perf/epoch_s": time.perf_counter() - started, "perf/train_s": train_s,
                        "perf/samples_per_s": (state.tones_seen - self.tones_at_start) / train_s, "perf/updates": float(state.step)})
        if self.scheduler is not None and not per_update(self.scheduler):
            self.scheduler.step(metrics["val/loss"])
        return metrics

    def after_unit(self, state: TrainState, metrics: dict[str, float]) -> None:
        self.ctx.log.info("epoch %d/%d: %s", state.epoch, self.max_epochs, _fmt(metrics))

    # -- target watch ------------------------------------------------------------------------------
    def _check_best_metric(self, metrics: dict[str, float]) -> None:
        from_watch = self.best_metric.startswith(("eval/", "screen/", "confirm/")) and self.watch is not None
        if self.best_metric not in metrics and not from_watch:
            raise AaexpError(f"trainer.best_metric={self.best_metric!r} is not a validation metric; choose from "
                             f"{sorted(metrics)} (or eval/excess_db with trainer.eval_every_s or eval_every_n)")

    def _watch(self, state: TrainState) -> bool:
        """In-training scoring against the target; True when training should stop here."""
        tracker, log = self.ctx.tracker, self.ctx.log
        self.loop.flush()   # a NaN must stop the run, not be scored
        check = self.watch.check(self.scored)
        metrics = check.metrics
        state.wall_s = self.loop.wall_s()
        metrics.update({"perf/wall_s": state.wall_s, "perf/tones_seen": float(state.tones_seen),
                        "perf/scoring_share": self.watch.seconds / max(state.wall_s, 1e-9)})
        tracker.log_metrics(metrics, step=state.step)
        self.loop.save_best(state, metrics, state.epoch)
        where = f"{state.step} updates, {state.wall_s:.0f} s"
        if check.screened_out:
            log.info("screen at %s: worst band %+.1f dB from the target", where, metrics["screen/excess_db"])
        else:
            log.info("eval at %s: worst band %+.1f dB from the target%s", where, metrics["eval/excess_db"],
                     "" if not check.passed else (" - met; confirmation grid %+.1f dB" % metrics["confirm/excess_db"]
                                                  if "confirm/excess_db" in metrics else " - target met"))
        if check.passed and not check.confirmed:
            state.confirm_failures += 1
            log.info("the confirmation grid does not confirm it (%d time(s) so far): training goes on", state.confirm_failures)
        if check.confirmed and state.target_step is None:
            state.target_step, state.target_wall_s, state.target_tones = state.step, state.wall_s, state.tones_seen
            self.loop.save_model(self.ckpt_dir / TARGET, state)
            at_target = {"perf/time_to_target_s": state.wall_s, "perf/updates_to_target": float(state.step),
                         "perf/tones_to_target": float(state.tones_seen),
                         "perf/confirm_failures": float(state.confirm_failures)}
            for prefix, name in (("eval/", "target/"), ("confirm/", "target/confirm/")):
                at_target.update({name + k[len(prefix):]: v for k, v in metrics.items()
                                  if k.startswith((prefix + "nmr_s/", prefix + "hesr_r/"))})
            tracker.log_metrics(at_target, step=state.step)
            tracker.set_tags({"time_to_target_s": f"{state.wall_s:.0f}"})
            tables = check.result.format_table()
            if check.confirm_result is not None:
                tables += "\nconfirmation grid (tones not used to stop):\n" + check.confirm_result.format_table()
            print(f"target met after {state.wall_s:.0f} s ({state.step} updates, {state.tones_seen} tones):\n{tables}", flush=True)
        self.watch.restart(state.step)
        return check.confirmed and self.watch.stop_at_target

    # -- the run -----------------------------------------------------------------------------------
    def fit(self) -> FitResult:
        state, stopped = self.loop.fit(self)
        log = self.ctx.log
        if stopped == "target":
            log.info("stopped at the target after %d updates (trainer.stop_at_target)", state.step)
        elif stopped == "time":
            log.info("stopped after trainer.max_time_s=%g s (%d updates)", self.max_time_s, state.step)
        if self.watch is not None and state.target_step is None:
            log.info("the target was not met in %d updates (%.0f s)", state.step, self.loop.wall_s())
        if not (self.ckpt_dir / BEST).is_file():  # best_metric never measured (eval/* with no evaluation yet)
            log.warning("trainer.best_metric=%s was never measured: the last student is kept as the best", self.best_metric)
            state.best_epoch, state.best_step = state.epoch, state.step
            self.loop.save_model(self.ckpt_dir / BEST, state)
        target = self.ckpt_dir / TARGET if state.target_step is not None else None
        return FitResult(state, self.ckpt_dir / BEST, self.ckpt_dir / LAST, target)


def draw_order(n: int, difficulty: list[float] | None, kind: str, mix: float, floor_db: float,
               gen: torch.Generator) -> torch.Tensor:
    """An epoch's tone order: a shuffle (uniform, or nothing measured yet), or n draws with replacement with
    probability (1 − mix)/n + mix·w/Σw, w = a tone's NMR in dB above floor_db when last trained on (a tone not
    yet seen weighs as the hardest): training goes where the student still aliases, every tone keeps a share."""
    d = torch.tensor(difficulty or [], dtype=torch.float64)
    seen = torch.isfinite(d)
    if kind != "difficulty" or not seen.any():
        return torch.randperm(n, generator=gen)
    w = (d - floor_db).clamp_min(0.0)
    w[~seen] = w[seen].max()
    if float(w.sum()) <= 0:
        return torch.randperm(n, generator=gen)
    p = (1.0 - mix) / n + mix * w / w.sum()
    return torch.multinomial(p, n, replacement=True, generator=gen)


def _fmt(metrics: dict[str, float]) -> str:
    keys = ("train/loss", "val/loss", "val/nmr_db", "val/asr_db", "val/esr_db", "lambda", "perf/epoch_s")
    return " ".join(f"{k}={metrics[k]:.4g}" for k in keys if metrics.get(k) is not None)
