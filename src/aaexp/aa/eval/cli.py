"""`aaexp eval --student s.nam [--teacher t.nam] [--baseline old.nam]`: the anti-aliasing table.

Prints the per-band NMR-S / HESR-R table (and the verdict when a baseline is given; with
--oversample 2,4 also the teacher run at 2·fs and 4·fs, aaexp.aa.eval.oversample), writes
table.csv/json/md and plots under --out, --json PATH, and logs everything to MLflow (a new run in
experiment aaexp-aa, or --run-id). Numbers come from conf/eval/aa.yaml; --eval-set changes any.
`--audio-check` (or `--di FILE`) runs the real-audio check instead (aaexp.aa.eval.audio_check).
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from aaexp.core.config import CONF_DIR
from aaexp.core.errors import AaexpError

DESCRIPTION = "anti-aliasing of amp models: NMR-S and HESR-R per band (--student, --teacher, --baseline)"


def _add(group, flag: str, **kwargs) -> None:
    """Add a flag unless another study already did (e.g. --device): they then share it."""
    if flag not in group._option_string_actions:  # argument groups share their parser's table
        group.add_argument(flag, **kwargs)


def add_arguments(group) -> None:
    group.add_argument("--student", metavar="MODEL", help="the model to score (.nam, or Proteus .json)")
    group.add_argument("--teacher", metavar="MODEL", help="the model the student was fine-tuned from; HESR-R needs it")
    group.add_argument("--baseline", metavar="MODEL", help="an earlier student: adds its rows and the decision-tree verdict")
    group.add_argument("--level", type=float, nargs="+", metavar="DBFS", help="tone level(s) in dBFS (default -20; several allowed)")
    group.add_argument("--group-by", choices=["f0", "region"],
                       help="f0: a tone scores in the band of its f0 (default); region: content scores where it lies")
    group.add_argument("--n-tones", type=int, metavar="N", help="log-spaced tones per level, 27.5 Hz-12 kHz (default 50)")
    _add(group, "--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    group.add_argument("--model-rate", type=float, metavar="HZ",
                       help="sample rate of model files that carry none (Proteus .json; default 44100 with a warning)")
    group.add_argument("--resample", action="store_true",
                       help="allow a student/baseline at another sample rate than the teacher: resample explicitly")
    group.add_argument("--oversample", metavar="K[,K...]",
                       help="add the teacher run at K·fs (adapted, polyphase-resampled) as rows 'teacher ×K', e.g. 2,4")
    group.add_argument("--no-plots", action="store_true", help="skip the PNG plots (and the sweep they need)")
    group.add_argument("--audio-check", action="store_true",
                       help="instead of the tone table: teacher, student and teacher ×2 on a generated guitar DI; "
                            "WAVs, spectrograms and numbers under OUT/audio_check")
    group.add_argument("--di", metavar="WAV", help="the audio check on this recording instead of the generated DI (implies --audio-check)")
    group.add_argument("--eval-set", action="append", default=[], metavar="KEY=VALUE",
                       help="override conf/eval/aa.yaml, e.g. --eval-set warmup.max_s=6.4 (repeatable)")


def claims(args) -> bool:
    return any(getattr(args, k, None) for k in ("student", "teacher", "baseline", "audio_check", "di"))


def eval_config(args):
    """conf/eval/aa.yaml with --eval-set and the shorthand flags applied; unknown keys are errors."""
    cfg = OmegaConf.load(CONF_DIR / "eval" / "aa.yaml")
    OmegaConf.set_struct(cfg, True)
    sets = list(args.eval_set)
    if args.level:
        sets.append(f"tones.levels_dbfs=[{','.join(repr(float(v)) for v in args.level)}]")
    if args.group_by:
        sets.append(f"group_by={args.group_by}")
    if args.n_tones is not None:
        sets.append(f"tones.n={args.n_tones}")
    if args.no_plots:
        sets.append("plots=false")
    for item in sets:
        if "=" not in item:
            raise AaexpError(f"--eval-set {item!r}: expected KEY=VALUE")
    try:
        return OmegaConf.merge(cfg, OmegaConf.from_dotlist(sets))
    except OmegaConfBaseException as exc:
        raise AaexpError(f"--eval-set: {str(exc).splitlines()[0]}") from exc


def load_models(args) -> dict:
    """{'teacher'|'baseline'|'student': AmpModel}, rates reconciled (refused, or resampled with --resample)."""
    from aaexp.aa.models import load_model

    if not args.student:
        raise AaexpError("--student is required (the model to score); --teacher and --baseline are optional")
    if args.baseline and not args.teacher:
        raise AaexpError("--baseline needs --teacher: the verdict compares HESR-R, which is measured against the teacher")
    paths = {k: getattr(args, k) for k in ("teacher", "baseline", "student") if getattr(args, k)}
    with warnings.catch_warnings(record=True) as caught:  # e.g. "no sample rate in the file": one line each
        warnings.simplefilter("always")
        models = {k: load_model(Path(p), default_sample_rate=args.model_rate) for k, p in paths.items()}
    for w in caught:
        hint = " [aaexp eval: --model-rate HZ]" if "sample rate" in str(w.message) else ""
        print(f"aaexp eval: warning: {str(w.message).splitlines()[0]}{hint}", file=sys.stderr)
    if "teacher" in models:
        fs = float(models["teacher"].sample_rate)
        for name in ("baseline", "student"):
            if name not in models or float(models[name].sample_rate) == fs:
                continue
            rate = float(models[name].sample_rate)
            if not args.resample:
                raise AaexpError(f"the {name} {paths[name]} runs at {rate:g} Hz and the teacher {paths['teacher']} at {fs:g} Hz: "
                                 f"HESR-R would compare signals at different rates; pass --resample to resample the {name} explicitly")
            from aaexp.aa.eval.resample import Resampled

            models[name] = Resampled(models[name], fs)
            print(f"aaexp eval: note: resampling the {name} {rate:g} Hz <-> {fs:g} Hz around each forward pass "
                  f"(scipy.signal.resample_poly); its scores include the resampler", file=sys.stderr)
    return models


def oversample_factors(args) -> list[int]:
    """--oversample 2,4 -> [2, 4] (checked before any model is loaded); [] without the flag."""
    if getattr(args, "oversample", None) is None:
        return []
    from aaexp.aa.eval.oversample import parse_factors

    factors = parse_factors(args.oversample)
    if not args.teacher:
        raise AaexpError("--oversample needs --teacher: it is the teacher that is run at k·fs")
    return factors


def run_audio_check(args, cfg) -> int:
    """`aaexp eval --audio-check` / `--di FILE`: the real-audio check alone (aaexp.aa.eval.audio_check)."""
    from aaexp.aa.eval.audio_check import FOLDER, run_audio_check
    from aaexp.core.device import resolve_device
    from aaexp.tracking.eval_run import eval_tracker

    if not args.teacher:
        raise AaexpError("--audio-check needs --teacher (and --student): the student is compared with the teacher, "
                         "and it is the teacher that runs oversampled")
    if args.baseline:
        raise AaexpError("--audio-check compares the teacher and one student: leave out --baseline")
    if args.di and not Path(args.di).is_file():
        raise AaexpError(f"--di {args.di}: no such file")
    device = resolve_device(args.device)
    factors = oversample_factors(args) or None
    models = load_models(args)
    t0 = time.perf_counter()
    check = run_audio_check(models["teacher"], models["student"], cfg, device, di_file=args.di, oversample=factors)
    print(check.format_table())
    out_dir = Path(args.out) / FOLDER
    run_name = f"audio check {Path(args.student).stem} vs {Path(args.teacher).stem}"
    with eval_tracker(args, "aa", run_name) as tracker:
        check.log_to(tracker, out_dir, cfg.audio_check.spectrogram)
        if tracker is not None:
            print(f"\nlogged to MLflow run {tracker.run_id}", file=sys.stderr)
    _write_json(args.json, check.to_dict())
    print(f"audio, spectrograms and numbers in {out_dir.resolve()} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return 0


def _write_json(path: str | None, doc: dict) -> None:
    """`--json PATH`: everything machine-readable (nothing when not asked for)."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def run(args) -> int:
    from aaexp.aa.eval.evaluator import evaluate
    from aaexp.core.device import resolve_device
    from aaexp.tracking.eval_run import eval_tracker

    cfg = eval_config(args)
    if args.audio_check or args.di:
        return run_audio_check(args, cfg)
    device = resolve_device(args.device)
    factors = oversample_factors(args)
    models = load_models(args)
    t0 = time.perf_counter()
    result = evaluate(models.get("teacher"), models["student"], cfg, device, baseline=models.get("baseline"),
                      progress=sys.stderr.isatty(), oversample=factors)
    seconds = time.perf_counter() - t0
    result.meta["files"] = {k: getattr(args, k) for k in ("teacher", "baseline", "student") if getattr(args, k)}
    print(result.format_table())
    run_name = f"eval {Path(args.student).stem}" + (f" vs {Path(args.teacher).stem}" if args.teacher else "")
    # Evaluate first, log after: a failing evaluation never marks a training run (--run-id) FAILED.
    with eval_tracker(args, "aa", run_name) as tracker:
        out_dir = Path(args.out)
        result.log_to(tracker, out_dir, plots=bool(cfg.plots))
        if tracker is not None:
            tracker.set_tags({f"eval.{k}": str(Path(v).resolve()) for k, v in result.meta["files"].items()})
            tracker.log_text(OmegaConf.to_yaml(cfg), "eval/eval_config.yaml")
            tracker.log_metrics({"eval/seconds": seconds})
            print(f"\nlogged to MLflow run {tracker.run_id}", file=sys.stderr)
    _write_json(args.json, result.to_dict())
    print(f"tables and plots in {out_dir.resolve()} ({seconds:.1f} s)", file=sys.stderr)
    return 0
