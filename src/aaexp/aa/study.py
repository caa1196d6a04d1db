"""`aaexp train` for the anti-aliasing study: teacher → cached targets → fine-tuned student → evaluation.

The student starts as an exact copy of the teacher and learns to match the teacher's
*bandlimited* response to sine tones (its harmonics kept, its aliasing dropped). Everything goes
into the run's MLflow record: per-epoch curves, the best and last students as model files, the
per-band evaluation of teacher vs student with plots and a verdict.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from omegaconf import DictConfig

from aaexp.aa import data as tone_data
from aaexp.aa.evaluation import evaluate
from aaexp.aa.framing import Framing
from aaexp.aa.loss_mix import AALoss, lambda_at, term_weights
from aaexp.aa.models import DEMO_TEACHER, AmpModel, export_model, load_model
from aaexp.aa.trainer import Trainer
from aaexp.device import cpu_threads
from aaexp.errors import AaexpError


def teacher_path(model_cfg: DictConfig) -> Path:
    """`model.teacher.path`, or the packaged demo teacher when it is null."""
    p = model_cfg.teacher.get("path")
    return Path(DEMO_TEACHER if p in (None, "") else str(p)).expanduser()


def load_teacher(model_cfg: DictConfig, device: torch.device) -> tuple[AmpModel, Path]:
    path = teacher_path(model_cfg)
    dtype = tone_data.DTYPES.get(str(model_cfg.dtype))
    if dtype is None:
        raise AaexpError(f"model.dtype={model_cfg.dtype!r} is not one of {', '.join(tone_data.DTYPES)}")
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


def export_students(ctx, student: AmpModel, best_path: Path, note: str) -> dict[str, Path]:
    """Write the last and the best student as model files (teacher's format/version) and log them."""
    out = {}
    folder = Path(ctx.out_dir) / "students"
    folder.mkdir(parents=True, exist_ok=True)
    out["last"] = export_model(student, folder / f"student_last{student.file_suffix}", note=f"{note}; last epoch")
    best = copy.deepcopy(student)
    blob = torch.load(best_path, map_location="cpu", weights_only=False)
    best.load_state_dict(blob["student"])
    out["best"] = export_model(best, folder / f"student_best{student.file_suffix}",
                               note=f"{note}; best epoch {blob['epoch']}")
    for p in out.values():
        ctx.tracker.log_artifact(p, "students")
    return out


def run(ctx) -> dict[str, float]:
    """Train one student (see module docstring); returns the final metrics."""
    with cpu_threads(ctx.cfg.trainer.get("cpu_threads"), ctx.device):
        return _run(ctx)


def _run(ctx) -> dict[str, float]:
    cfg, log = ctx.cfg, ctx.log
    teacher, t_path = load_teacher(cfg.model, ctx.device)
    dtype = teacher.dtype
    log.info("teacher %s: %s, %g Hz, receptive field %d", t_path, teacher.architecture, teacher.sample_rate,
             teacher.receptive_field)
    # Refuse bad loss settings, or a warm-up shorter than the student needs, before computing targets.
    term_weights(cfg.loss, lambda_at(cfg.loss, 0, int(cfg.trainer.max_epochs)))
    layout = tone_data.ToneLayout.from_config(cfg.data, teacher.sample_rate)
    Framing.build(teacher, layout.n_warmup, layout.n_window, AALoss(cfg.loss, teacher.sample_rate).history,
                  tbptt_for(teacher, cfg.model))
    train, val, cache_path, hit = tone_data.load_or_build(teacher, t_path, cfg.data, str(cfg.model.dtype), ctx.device,
                                                          progress=ctx.progress, log=log)
    ctx.tracker.set_tags({"teacher": str(t_path), "teacher.sha256": teacher.source.sha256,
                          "teacher.architecture": teacher.architecture, "data.cache": "hit" if hit else "miss",
                          "data.cache_file": str(cache_path)})
    ctx.tracker.log_metrics({"data/n_window": train.n_window, "data/n_warmup": train.n_warmup,
                             "data/max_snap_cents": max(train.max_snap_cents, val.max_snap_cents)})

    student = copy.deepcopy(teacher).train().requires_grad_(True)
    trainer = Trainer(ctx, student, train, val, cfg.loss, cfg.trainer, tbptt_for(student, cfg.model), dtype)
    fit = trainer.fit()

    lam = cfg.loss.get("lam")
    note = f"aaexp anti-aliasing fine-tune of {t_path.name} (loss.lam={lam}, schedule={cfg.loss.schedule})"
    files = export_students(ctx, student, fit.best_path, note)
    log.info("students written: %s", ", ".join(str(p) for p in files.values()))

    best = load_model(files["best"], dtype=dtype, device=ctx.device, default_sample_rate=teacher.sample_rate)
    b_path = baseline_path(cfg.model)
    baseline = None if b_path is None else load_model(b_path, dtype=dtype, device=ctx.device,
                                                      default_sample_rate=teacher.sample_rate)
    if baseline is None:
        log.info("no verdict: give model.baseline.path (an earlier student, or its run folder) to get one")
    result = evaluate(teacher, best, cfg.eval, ctx.device, baseline=baseline, progress=ctx.progress)
    result.log_to(ctx.tracker, Path(ctx.out_dir) / "eval")
    verdict = result.verdict or "n/a (no baseline)"
    ctx.tracker.set_tags({"verdict": verdict, "best_epoch": fit.state.best_epoch})
    print(result.format_table())
    print(f"verdict: {verdict}")
    print(f"students (best epoch {fit.state.best_epoch}, last): {files['best']}, {files['last']}")

    # Returned (and logged once by the runner): the evaluation, plus the best epoch's validation
    # numbers under best/ so the per-epoch val/ curves keep one point per epoch.
    best_val = next((h for h in fit.state.history if h["epoch"] == fit.state.best_epoch), fit.state.history[-1])
    final = {f"best/{k}": v for k, v in best_val.items() if k.startswith("val/") and v is not None}
    final.update(result.metrics)
    final["best/epoch"] = float(fit.state.best_epoch)
    return final
