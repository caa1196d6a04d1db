"""Per-band evaluation of anti-aliasing students: NMR-S and HESR-R on a grid of periodic tones.

`evaluate(teacher, student, cfg.eval, device)` runs every model on the grid (batched, no
gradients, on the device), bandlimits the windows exactly, scores each tone, groups the tones into
bands (`group_by`: f0 | region) and, given a baseline, applies the decision tree (aaexp.aa.eval.verdict).
Definitions are in aaexp.aa.eval.scores; conf/eval/aa.yaml holds every number.
"""

from __future__ import annotations

import math
import time

import torch

from aaexp.aa.eval import grid as eval_grid
from aaexp.aa.eval import response as eval_response
from aaexp.aa.eval import scores as eval_scores
from aaexp.aa.eval.table import EvalResult, ModelEval, oversampled_name
from aaexp.aa.eval.verdict import decide
from aaexp.aa.loss.nmr import NMRLoss
from aaexp.core.errors import AaexpError
from aaexp.core.progress import bar

GROUP_BY = ("f0", "region")


def relative_l2(teacher: torch.nn.Module, student: torch.nn.Module) -> float | None:
    """||w_student - w_teacher|| / ||w_teacher|| over all parameters; None when the shapes differ."""
    tp = [p.detach().to("cpu", torch.float64).flatten() for p in teacher.parameters()]
    sp = [p.detach().to("cpu", torch.float64).flatten() for p in student.parameters()]
    if not tp or [p.numel() for p in tp] != [p.numel() for p in sp]:
        return None
    t, s = torch.cat(tp), torch.cat(sp)
    return float((s - t).norm() / t.norm().clamp_min(1e-300))


def derivation_warnings(teacher: torch.nn.Module, student: torch.nn.Module, max_relative_l2: float, name: str = "student") -> list[str]:
    """Reasons to doubt that `student` was fine-tuned from `teacher` (then HESR-R compares unrelated models)."""
    ta, sa = getattr(teacher, "architecture", None), getattr(student, "architecture", None)
    if ta != sa:
        return [f"the {name} ({sa}) and the teacher ({ta}) are different architectures: HESR-R compares unrelated models"]
    rel = relative_l2(teacher, student)
    if rel is None:
        return [f"the {name}'s weights are shaped differently from the teacher's: it was not fine-tuned from it"]
    if rel > max_relative_l2:
        return [f"the {name}'s weights are far from the teacher's (relative L2 distance {rel:.2f} > {max_relative_l2:g}): "
                f"it does not look fine-tuned from this teacher, so HESR-R may compare unrelated models"]
    return []


def _sample_rate(models: dict[str, torch.nn.Module]) -> int:
    rates = {name: float(model.sample_rate) for name, model in models.items()}
    if len({round(r, 6) for r in rates.values()}) > 1:
        listed = ", ".join(f"{n} {r:g} Hz" for n, r in rates.items())
        raise AaexpError(f"models run at different sample rates ({listed}); resample them first (aaexp eval --resample)")
    fs = next(iter(rates.values()))
    if fs != round(fs):
        raise AaexpError(f"sample rate {fs} Hz is not an integer")
    return int(round(fs))


def _check_cfg(cfg_eval) -> None:
    if cfg_eval.group_by not in GROUP_BY:
        raise AaexpError(f"eval.group_by={cfg_eval.group_by!r}: choose f0 or region")
    if cfg_eval.aggregate != "power_mean":
        raise AaexpError(f"eval.aggregate={cfg_eval.aggregate!r}: only power_mean is implemented")
    if not hasattr(torch, str(cfg_eval.dtype)) or not isinstance(getattr(torch, str(cfg_eval.dtype)), torch.dtype):
        raise AaexpError(f"eval.dtype={cfg_eval.dtype!r} is not a torch dtype (float64 | float32)")


def _score(name: str, resp: eval_response.Response, teacher_y: torch.Tensor | None, grid: eval_grid.ToneGrid,
           nmr: torch.nn.Module, bin_masks: torch.Tensor | None, cfg_eval, progress: bool) -> eval_scores.ToneScores:
    """Per-tone NMR-S and HESR-R of one model, in batches."""
    floor, n = float(cfg_eval.floor_db), grid.n_window
    m = grid.m.to(resp.y.device)
    out: dict[str, list[torch.Tensor]] = {"nmr": [], "hesr": [], "nmr_r": [], "hesr_r": []}
    for idx in bar(eval_response.chunks(torch.arange(len(grid)), int(cfg_eval.batch_size)), enabled=progress, desc=f"scoring {name}"):
        idx = idx.to(resp.y.device)
        y = resp.y[idx]
        spec = torch.fft.rfft(y)
        out["nmr"].append(eval_scores.nmr_s(nmr, y, spec, m[idx], floor).cpu())
        if bin_masks is not None:
            out["nmr_r"].append(eval_scores.nmr_s_by_region(nmr, spec, m[idx], n, bin_masks, floor).cpu())
        if teacher_y is not None:
            spec_t = spec if teacher_y is resp.y else torch.fft.rfft(teacher_y[idx])
            total, region = eval_scores.hesr_r(spec, spec_t, m[idx], n, floor, bin_masks, float(cfg_eval.region_min_energy_db))
            out["hesr"].append(total.cpu())
            if region is not None:
                out["hesr_r"].append(region.cpu())
    nan_b = torch.full((len(grid),), torch.nan, dtype=torch.float64)
    nb = 0 if bin_masks is None else bin_masks.shape[0]
    return eval_scores.ToneScores(
        nmr_s=torch.cat(out["nmr"]),
        hesr_r=torch.cat(out["hesr"]) if out["hesr"] else nan_b,
        nmr_s_region=torch.cat(out["nmr_r"], dim=1) if out["nmr_r"] else None,
        hesr_r_region=(torch.cat(out["hesr_r"], dim=1) if out["hesr_r"] else nan_b.expand(nb, -1).clone()) if nb else None,
    )


def _row(model: str, band: str, lo: float, hi: float, nmr: tuple, hesr: tuple, thresholds: dict[str, float]) -> dict:
    """One table row from (power mean, max, count) of NMR-S and of HESR-R."""
    row = {"model": model, "band": band, "lo_hz": lo, "hi_hz": hi,
           "n_tones": int(nmr[2]), "nmr_s_db": float(nmr[0]), "nmr_s_max_db": float(nmr[1]),
           "n_tones_hesr": int(hesr[2]), "hesr_r_db": float(hesr[0]), "hesr_r_max_db": float(hesr[1])}
    row["nmr_s_pass"] = None if math.isnan(row["nmr_s_db"]) else row["nmr_s_db"] < thresholds["nmr_s_db"]
    row["hesr_r_pass"] = None if math.isnan(row["hesr_r_db"]) else row["hesr_r_db"] < thresholds["hesr_r_db"]
    return row


def _band_rows(name: str, scores: eval_scores.ToneScores, groups: torch.Tensor, bands: list[eval_grid.Band],
               region: bool, thresholds: dict[str, float]) -> list[dict]:
    """Table rows for one model: one per band, then "all" (every tone, whole spectrum)."""
    everyone = torch.ones(1, groups.shape[1], dtype=torch.bool)
    if region:  # every tone may put aliases (NMR-S) or harmonics (HESR-R) in any band
        nmr_band = eval_scores.power_mean_db(scores.nmr_s_region, everyone.expand_as(groups))
        hesr_band = eval_scores.power_mean_db(scores.hesr_r_region, everyone.expand_as(groups))
    else:
        nmr_band = eval_scores.power_mean_db(scores.nmr_s, groups)
        hesr_band = eval_scores.power_mean_db(scores.hesr_r, groups)
    nmr_all = eval_scores.power_mean_db(scores.nmr_s, everyone)
    hesr_all = eval_scores.power_mean_db(scores.hesr_r, everyone)
    rows = [_row(name, b.name, b.lo_hz, b.hi_hz, [t[i] for t in nmr_band], [t[i] for t in hesr_band], thresholds)
            for i, b in enumerate(bands)]
    rows.append(_row(name, "all", float("nan"), float("nan"), [t[0] for t in nmr_all], [t[0] for t in hesr_all], thresholds))
    return rows


def _responses(prepared: dict, grid: eval_grid.ToneGrid, cfg_eval, device, dtype, progress: bool, warnings: list[str]) -> dict:
    """Each model's steady-state windows; adds a warning for tones that never became periodic."""
    responses = {}
    for name, model in prepared.items():
        if not getattr(model, "exactly_periodic", True):
            warnings.append(f"{name}: runs at {model.source_rate:g} Hz, resampled to {grid.fs} Hz; its own aliases are not periodic in "
                            f"the window and leak across bins, and its scores include the resampler")
        responses[name] = resp = eval_response.steady_response(model, grid, cfg_eval.warmup, int(cfg_eval.batch_size), device,
                                                               dtype, progress, desc=name)
        if resp.unsettled:
            worst = float(resp.mismatch_db[resp.unsettled].max())
            hz = ", ".join(f"{float(grid.f0[i]):.1f}" for i in resp.unsettled[:6]) + (" ..." if len(resp.unsettled) > 6 else "")
            warnings.append(f"{name}: {len(resp.unsettled)} tone(s) still not periodic after {cfg_eval.warmup.max_s:g} s of warm-up "
                            f"(mismatch up to {worst:.0f} dB > {cfg_eval.warmup.tolerance_db:g} dB; f0 {hz} Hz): "
                            f"their scores include transient leakage")
    return responses


def _sweep_spectrograms(prepared: dict, fs: int, cfg_eval, device, dtype) -> dict:
    """{model: spectrogram dB} of each model's response to the log sine sweep."""
    from aaexp.aa.eval.plots import log_sweep, spectrogram_db

    x = log_sweep(fs, cfg_eval.sweep, dtype, device)
    return {name: spectrogram_db(eval_response.forward(model, x)[0], int(cfg_eval.sweep.n_fft), int(cfg_eval.sweep.hop))
            for name, model in prepared.items()}


class GridEvaluator:
    """The evaluation grid with the teacher's side computed once; `score(student)` as often as needed.

    `evaluate()` is one GridEvaluator used once; training uses one to score the student every few
    minutes (the teacher's responses and scores are not recomputed), with the very same numbers.
    """

    def __init__(self, teacher, cfg_eval, device, progress: bool = False, fs: int | None = None,
                 grid: eval_grid.ToneGrid | None = None):
        _check_cfg(cfg_eval)
        self.cfg, self.progress = cfg_eval, progress
        self.device, self.dtype = torch.device(device), getattr(torch, str(cfg_eval.dtype))
        self.teacher = teacher
        self.fs = fs if teacher is None else _sample_rate({"teacher": teacher})
        self.grid = eval_grid.make_grid(cfg_eval, self.fs) if grid is None else grid
        self.bands = eval_grid.parse_bands(cfg_eval.bands)
        self.region = cfg_eval.group_by == "region"
        self.thresholds = {"nmr_s_db": float(cfg_eval.thresholds.nmr_s_db), "hesr_r_db": float(cfg_eval.thresholds.hesr_r_db)}
        self.nmr = NMRLoss(self.fs, floor_db=float(cfg_eval.floor_db), reduction="none").to(self.device)
        self.bin_masks = eval_grid.bin_band_masks(self.grid.n_window, self.fs, self.bands, self.device) if self.region else None
        self.groups = eval_grid.f0_groups(self.grid, self.bands)
        self.teacher_warnings: list[str] = []
        self._teacher = None   # (prepared model, response, ModelEval), computed on first use
        self._teacher_seconds: dict[str, float] = {}
        self._teacher_warm_seconds: dict[str, float] = {}
        self._oversampled: dict[int, tuple] = {}   # k -> (prepared, ModelEval, seconds, warnings)
        self._teacher_sweep = None

    def _timed_side(self, name: str, model, teacher_y, warnings: list[str]):
        """(prepared, response, ModelEval, {run_s, score_s}) of one teacher-side model."""
        t0 = time.perf_counter()
        prepared = eval_response.prepare_model(model, self.device, self.dtype)
        resp = _responses({name: prepared}, self.grid, self.cfg, self.device, self.dtype, self.progress, warnings)[name]
        t1 = time.perf_counter()
        ev = self._model_eval(name, resp, resp.y if teacher_y is None else teacher_y)
        return prepared, resp, ev, {"run_s": t1 - t0, "score_s": time.perf_counter() - t1}

    def _teacher_side(self):
        if self._teacher is None and self.teacher is not None:
            prepared, resp, ev, self._teacher_seconds = self._timed_side("teacher", self.teacher, None, self.teacher_warnings)
            self._teacher = (prepared, resp, ev)
        return self._teacher

    def _oversampled_side(self, model, k: int):
        """The teacher run at k·fs (eval_oversample.Oversampled), scored against the plain teacher; cached."""
        if k not in self._oversampled:
            warnings: list[str] = []
            _, resp_t, _ = self._teacher_side()
            prepared, _, ev, seconds = self._timed_side(oversampled_name(k), model, resp_t.y, warnings)
            self._oversampled[k] = (prepared, ev, seconds, warnings)
        return self._oversampled[k]

    def _oversample_meta(self, factors: list[int]) -> list[dict]:
        """Per factor: the filter and the cost, wall time relative to the plain teacher's evaluation."""
        from aaexp.aa.eval.oversample import filter_design

        if not self._teacher_warm_seconds:
            # the first pass also paid one-time set-up (allocations, NMR tables): time the teacher again, warm
            self._teacher_warm_seconds = self._timed_side("teacher", self.teacher, None, [])[3]
        t = self._teacher_warm_seconds
        t_all = t["run_s"] + t["score_s"]
        out = []
        for k in factors:
            s = self._oversampled[k][2]
            out.append({"factor": k, "model": oversampled_name(k), "run_s": s["run_s"], "score_s": s["score_s"],
                        "cost_vs_teacher": (s["run_s"] + s["score_s"]) / t_all, "run_cost_vs_teacher": s["run_s"] / t["run_s"],
                        "filter": filter_design(k)})
        return out

    def _model_eval(self, name: str, resp, teacher_y) -> ModelEval:
        scores = _score(name, resp, teacher_y, self.grid, self.nmr, self.bin_masks, self.cfg, self.progress)
        return ModelEval(scores=scores, rows=_band_rows(name, scores, self.groups, self.bands, self.region, self.thresholds),
                         warmup=resp.warmup, mismatch_db=resp.mismatch_db, unsettled=resp.unsettled)

    def score(self, student=None, baseline=None, plots: bool | None = None, oversample=()) -> EvalResult:
        """Score baseline and student (either may be None) beside the cached teacher.

        HESR-R needs the teacher; without it, it is n/a. A verdict is given when teacher, baseline
        and student are all present. Models are copied to the device in `eval.dtype`; the caller's
        are untouched. `plots` (default `eval.plots`) adds the sweep spectrograms. `oversample`
        (integer factors k) adds rows "teacher ×k": the teacher run at k·fs (aaexp.aa.eval.oversample),
        with HESR-R against the plain teacher and its cost in `meta["oversample"]`.
        """
        teacher = self.teacher
        models = {k: v for k, v in (("teacher", teacher), ("baseline", baseline), ("student", student)) if v is not None}
        if not models:
            raise AaexpError("nothing to evaluate: give a student or a teacher")
        fs = _sample_rate(models)
        factors = sorted({int(k) for k in oversample})
        if factors and teacher is None:
            raise AaexpError("oversampling needs the teacher (it is the teacher that is run at k·fs)")
        from aaexp.aa.eval.oversample import Oversampled

        wrapped = {k: Oversampled(teacher, k) for k in factors if k not in self._oversampled}   # refuses before the long runs
        warnings: list[str] = []
        distances = {}
        if teacher is not None:
            for name in ("baseline", "student"):
                if name in models:
                    warnings += derivation_warnings(teacher, models[name], float(self.cfg.derived.max_relative_l2), name)
                    distances[name] = relative_l2(teacher, models[name])
        results, prepared = {}, {}
        side = self._teacher_side()
        teacher_y = None
        if side is not None:
            prepared["teacher"], resp_t, results["teacher"] = side
            teacher_y = resp_t.y
            warnings += self.teacher_warnings
            for k in factors:
                prepared[oversampled_name(k)], results[oversampled_name(k)], _, over_warnings = \
                    self._oversampled_side(wrapped.get(k), k)
                warnings += over_warnings
        others = {k: eval_response.prepare_model(v, self.device, self.dtype) for k, v in models.items() if k != "teacher"}
        prepared.update(others)
        for name, resp in _responses(others, self.grid, self.cfg, self.device, self.dtype, self.progress, warnings).items():
            results[name] = self._model_eval(name, resp, teacher_y)
        order = ["teacher", *(oversampled_name(k) for k in factors), "baseline", "student"]
        results = {k: results[k] for k in order if k in results}

        verdict = None
        if {"teacher", "baseline", "student"} <= set(models):
            s = {r["band"]: r for r in results["student"].rows}
            b = {r["band"]: r for r in results["baseline"].rows}
            verdict = decide({k: r["nmr_s_db"] for k, r in s.items() if k != "all"}, s["all"]["hesr_r_db"], b["all"]["hesr_r_db"],
                             self.thresholds["nmr_s_db"], float(self.cfg.verdict.min_hesr_gain_db))
        plots = bool(self.cfg.plots) if plots is None else plots
        sweeps = _sweep_spectrograms(prepared, fs, self.cfg, self.device, self.dtype) if plots else {}
        grid, cfg_eval = self.grid, self.cfg
        meta = {
            "fs": fs, "n_window": grid.n_window, "window_s": grid.n_window / fs, "group_by": cfg_eval.group_by,
            "n_tones": len(grid), "f_min_hz": float(grid.f0.min()), "f_max_hz": float(grid.f0.max()),
            "levels_dbfs": sorted({float(v) for v in grid.level_dbfs}), "max_snap_cents": grid.max_snap_cents,
            "thresholds": self.thresholds, "floor_db": float(cfg_eval.floor_db), "aggregate": str(cfg_eval.aggregate),
            "dtype": str(cfg_eval.dtype), "device": str(self.device), "relative_l2_to_teacher": distances,
            "models": {k: {"architecture": getattr(v, "architecture", None), "sample_rate": float(v.sample_rate),
                           "receptive_field": int(getattr(v, "receptive_field", 0) or 0)} for k, v in models.items()},
        }
        if factors:
            meta["oversample"] = self._oversample_meta(factors)
            meta["teacher_seconds"] = dict(self._teacher_warm_seconds)
        return EvalResult(grid=grid, bands=self.bands, models=results, verdict=verdict.decision if verdict else None,
                          verdict_reason=verdict.reason if verdict else None, warnings=warnings, meta=meta,
                          sweeps=sweeps, sweep_hop=int(cfg_eval.sweep.hop), sweep_range_db=float(cfg_eval.sweep.dynamic_range_db))


def evaluate(teacher, student, cfg_eval, device, baseline=None, progress: bool = False, oversample=()) -> EvalResult:
    """Score teacher, baseline and student (any that are given; at least one) on the tone grid;
    `oversample` factors add the teacher run at k·fs (see GridEvaluator.score)."""
    models = {k: v for k, v in (("teacher", teacher), ("baseline", baseline), ("student", student)) if v is not None}
    if not models:
        raise AaexpError("nothing to evaluate: give a student or a teacher")
    _check_cfg(cfg_eval)
    fs = _sample_rate(models)
    return GridEvaluator(teacher, cfg_eval, device, progress, fs=fs).score(student, baseline, oversample=oversample)


__all__ = ["evaluate", "GridEvaluator", "EvalResult", "derivation_warnings", "relative_l2", "GROUP_BY"]
