"""`aaexp train` for the anti-aliasing study: teacher → cached targets → fine-tuned student → evaluation.

The student starts as an exact copy of the teacher and learns to match the teacher's
*bandlimited* response to sine tones (its harmonics kept, its aliasing dropped). Everything goes
into the run's MLflow record: per-epoch curves, the best and last students as model files, the
per-band evaluation of teacher vs student with plots and a verdict, and the real-audio check
(aaexp.aa.eval.audio_check: WAVs and spectrograms of teacher, student and teacher ×2 on a guitar DI).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
from omegaconf import DictConfig

from aaexp.aa.eval.audio_check import FOLDER as AUDIO_CHECK_FOLDER
from aaexp.aa.eval.audio_check import run_audio_check
from aaexp.aa.eval.evaluator import evaluate
from aaexp.aa.loss.mix import AALoss, lambda_at, term_weights
from aaexp.aa.models import DEMO_TEACHER, AmpModel, export_model, load_model
from aaexp.aa.train import data as tone_data
from aaexp.aa.train.framing import Framing
from aaexp.aa.train.target_watch import TargetWatch
from aaexp.aa.train.trainer import Trainer
from aaexp.core.errors import AaexpError
from aaexp.core.files import load_safely


def teacher_path(model_cfg: DictConfig) -> Path:
    """`model.teacher.path`, or the packaged demo teacher when it is null."""
    p = model_cfg.teacher.get("path")
    return Path(DEMO_TEACHER if p in (None, "") else str(p)).expanduser()


def load_teacher(model_cfg: DictConfig, device: torch.device, dtype_name: str | None = None) -> tuple[AmpModel, Path]:
    """The teacher in `dtype_name` (default `model.dtype`), frozen."""
    path = teacher_path(model_cfg)
    key = "model.dtype" if dtype_name is None else "data.target_dtype"
    dtype_name = str(model_cfg.dtype if dtype_name is None else dtype_name)
    dtype = tone_data.DTYPES.get(dtype_name)
    if dtype is None:
        raise AaexpError(f"{key}={dtype_name!r} is not one of {', '.join(tone_data.DTYPES)}")
    teacher = load_model(path, dtype=dtype, device=device, default_sample_rate=model_cfg.get("sample_rate"))
    teacher.eval().requires_grad_(False)
    return teacher, path


def baseline_path(model_cfg: DictConfig) -> Path | None:
    """`model.baseline.path`: a student file, or the run folder of an earlier training (its best student)."""
    p = model_cfg.baseline.get("path")
    if p in (None, ""):
        return None
    path = Path(str(p)).expanduser()
    if path.is_dir():
        found = sorted((path / "students").glob("student_best.*"))
        if not found:
            raise AaexpError(f"model.baseline.path={p}: a folder, but no students/student_best.* in it")
        return found[0]
    return path


def tbptt_for(model: AmpModel, model_cfg: DictConfig) -> int | None:
    """Frame length of truncated BPTT for this architecture (None: the whole window in one step)."""
    value = model_cfg.tbptt.get(model.architecture.lower())
    return None if value in (None, 0) else int(value)


def export_students(ctx, student: AmpModel, best_path: Path, note: str, target_path: Path | None = None) -> dict[str, Path]:
    """Write the last, the best and (if met) the first at-target student as model files (teacher's format/version)."""
    out = {}
    folder = Path(ctx.out_dir) / "students"
    folder.mkdir(parents=True, exist_ok=True)
    out["last"] = export_model(student, folder / f"student_last{student.file_suffix}", note=f"{note}; last epoch")
    for name, path, what in (("best", best_path, "best"), ("target", target_path, "first to meet the target")):
        if path is None:
            continue
        model = copy.deepcopy(student)
        blob = load_safely(path, "an aaexp student checkpoint")
        model.load_state_dict(blob["model"])
        out[name] = export_model(model, folder / f"student_{name}{student.file_suffix}",
                                 note=f"{note}; {what}, epoch {blob['epoch']}, update {blob.get('step', 'n/a')}")
    for p in out.values():
        ctx.tracker.log_artifact(p, "students")
    return out


def run(ctx) -> dict[str, float]:
    """Train one student (see module docstring); returns the final metrics."""
    cfg, log = ctx.cfg, ctx.log
    # Targets and evaluation from a float64 teacher (data.target_dtype); the student trains in model.dtype.
    teacher, t_path = load_teacher(cfg.model, ctx.device, str(cfg.data.target_dtype))
    dtype = tone_data.DTYPES.get(str(cfg.model.dtype))
    if dtype is None:
        raise AaexpError(f"model.dtype={cfg.model.dtype!r} is not one of {', '.join(tone_data.DTYPES)}")
    log.info("teacher %s: %s, %g Hz, receptive field %d", t_path, teacher.architecture, teacher.sample_rate,
             teacher.receptive_field)
    # Refuse bad loss settings, or a warm-up shorter than the student needs, before computing targets.
    term_weights(cfg.loss, lambda_at(cfg.loss, 0, int(cfg.trainer.max_epochs)))
    layout = tone_data.ToneLayout.from_config(cfg.data, teacher.sample_rate)
    Framing.build(teacher, layout.n_warmup, layout.n_window, AALoss(cfg.loss, teacher.sample_rate).history,
                  tbptt_for(teacher, cfg.model))
    train, val, cache_path, hit = tone_data.load_or_build(teacher, t_path, cfg.data, str(cfg.data.target_dtype), ctx.device,
                                                          progress=ctx.progress, log=log)
    ctx.tracker.set_tags({"teacher": str(t_path), "teacher.sha256": teacher.source.sha256,
                          "teacher.architecture": teacher.architecture, "data.cache": "hit" if hit else "miss",
                          "data.cache_file": str(cache_path)})
    ctx.tracker.log_metrics({"data/n_window": train.n_window, "data/n_warmup": train.n_warmup,
                             "data/max_snap_cents": max(train.max_snap_cents, val.max_snap_cents)})

    student = copy.deepcopy(teacher).to(dtype).train().requires_grad_(True)
    watch = TargetWatch(teacher, cfg.eval, cfg.trainer, ctx.device)
    trainer = Trainer(ctx, student, train, val, cfg.loss, cfg.trainer, tbptt_for(student, cfg.model), dtype, watch)
    fit = trainer.fit()
    ctx.tracker.default_step = fit.state.step   # the final evaluation is the latest value of eval/*

    lam = cfg.loss.get("lam")
    note = f"aaexp anti-aliasing fine-tune of {t_path.name} (loss.lam={lam}, schedule={cfg.loss.schedule})"
    files = export_students(ctx, trainer.scored, fit.best_path, note, fit.target_path)   # the EMA when kept
    log.info("students written: %s", ", ".join(str(p) for p in files.values()))

    # The student judged at the end: the first to meet the target when training stopped there, else the best.
    final_key = "target" if fit.target_path is not None and watch.stop_at_target else "best"
    best = load_model(files[final_key], dtype=teacher.dtype, device=ctx.device, default_sample_rate=teacher.sample_rate)
    b_path = baseline_path(cfg.model)
    baseline = None if b_path is None else load_model(b_path, dtype=dtype, device=ctx.device,
                                                      default_sample_rate=teacher.sample_rate)
    if baseline is None:
        log.info("no verdict: give model.baseline.path (an earlier student, or its run folder) to get one")
    result = evaluate(teacher, best, cfg.eval, ctx.device, baseline=baseline, progress=ctx.progress)
    result.log_to(ctx.tracker, Path(ctx.out_dir) / "eval")
    if watch.confirmer is not None:   # the student reported is scored on tones its selection never saw
        confirmed, confirm_metrics = watch.score(best, watch.confirmer, "confirm/")
        ctx.tracker.log_metrics(confirm_metrics)
        print("confirmation grid (tones no stopping or best-checkpoint choice saw):\n" + confirmed.format_table())
    verdict = result.verdict or "n/a (no baseline)"
    ctx.tracker.set_tags({"verdict": verdict, "best_epoch": fit.state.best_epoch})
    print(result.format_table())
    print(f"verdict: {verdict}")
    print(f"students (best epoch {fit.state.best_epoch}, last): {files['best']}, {files['last']}")
    check = None
    if cfg.eval.audio_check.enabled:   # after the table: a failing check leaves the evaluation logged
        check = run_audio_check(teacher, best, cfg.eval, ctx.device, seconds=cfg.trainer.get("audio_check_s"))
        check.log_to(ctx.tracker, Path(ctx.out_dir) / "eval" / AUDIO_CHECK_FOLDER, cfg.eval.audio_check.spectrogram)
        print(check.format_table())
    if watch.enabled:
        met = fit.state.target_wall_s
        print(f"target (NMR-S < {cfg.eval.thresholds.nmr_s_db:g} dB in every band with tones, HESR-R < "
              f"{cfg.eval.thresholds.hesr_r_db:g} dB): " + (f"met after {met:.0f} s, {fit.state.target_step} updates, "
              f"student {files['target']}" if met is not None else f"not met in {fit.state.wall_s:.0f} s, {fit.state.step} updates"))

    # Returned (and logged once by the runner): the evaluation, plus the best epoch's validation
    # numbers under best/ so the per-epoch val/ curves keep one point per epoch.
    best_val = next((h for h in fit.state.history if h["epoch"] == fit.state.best_epoch), fit.state.history[-1])
    final = {f"best/{k}": v for k, v in best_val.items() if k.startswith("val/") and v is not None}
    final.update(result.metrics)
    if check is not None:
        final.update(check.metrics)
    final["best/epoch"] = float(fit.state.best_epoch)
    final["perf/updates"] = float(fit.state.step)
    final["perf/train_wall_s"] = fit.state.wall_s
    if watch.enabled:  # NaN: never met (a run without the watch does not log it at all)
        final["perf/time_to_target_s"] = math.nan if fit.state.target_wall_s is None else fit.state.target_wall_s
    return final
