"""`run(ctx)`: grow the violin's spectrogram with an NCA, vocode it, measure it, log it all.

Per `trainer.log_every` iterations: loss terms and the edge-artifact metric; per
`trainer.image_every`: a grown-vs-target image; at the end: the vocoded audio (grown.wav), the
target vocoded by the same vocoder (the vocoder's ceiling), audio measures of both against the
target file, a growth GIF, the model. A checkpoint every `trainer.checkpoint_every` iterations
lets `resume=true` continue an interrupted run.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from omegaconf import OmegaConf

from aaexp import undefined
from aaexp.errors import AaexpError, TrainingDiverged
from aaexp.progress import bar
from aaexp.tnca import contract as ct
from aaexp.tnca import measures, plots
from aaexp.tnca.audio_io import write_audio
from aaexp.tnca.contract import VocoderContract, contract_from_config
from aaexp.tnca.losses import MultiResolutionSTFTLoss, SpectrogramLoss
from aaexp.tnca.nca import OutputSpec, SpectrogramNCA, output_specs
from aaexp.tnca.target import Target, load_target
from aaexp.tnca.vocoders import GriffinLimVocoder, build_vocoder

CHECKPOINT = "checkpoint.pt"


@dataclass
class Setup:
    """The fixed parts of a run: contract, target, model, losses, vocoders."""

    contract: VocoderContract
    specs: list[OutputSpec]
    target: Target
    model: SpectrogramNCA
    loss: SpectrogramLoss
    vocoder: torch.nn.Module
    griffin_lim: GriffinLimVocoder
    vcfg: Mapping[str, Any]
    audio_loss: MultiResolutionSTFTLoss | None
    audio_cfg: Mapping[str, Any]


@dataclass
class TrainState:
    """Everything that changes while training (and goes into a checkpoint)."""

    iteration: int = 0
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    clock: tuple[float, int] | None = None  # (time, iteration) when this process started training
    died_at: int | None = None  # first logged iteration with no live cell left


def _check_outputs(specs: list[OutputSpec], vcfg: Mapping[str, Any], c: VocoderContract) -> None:
    by_name = {s.name: s for s in specs}
    if vcfg["source"] not in ("mel", "linear", "mix"):
        raise AaexpError(f"model.vocoder.source={vcfg['source']!r} is not one of mel, linear, mix")
    if vcfg["source"] in ("mel", "mix"):
        m = by_name.get(vcfg["mel_output"])
        if m is None or m.kind != "mel" or m.n_bins != c.n_mels:
            raise AaexpError(f"model.vocoder.mel_output={vcfg['mel_output']!r} must name a mel output with "
                             f"{c.n_mels} bins (the contract's n_mels); outputs: {sorted(by_name)}")
    if vcfg["source"] in ("linear", "mix"):
        lin = by_name.get(vcfg["linear_output"])
        if lin is None or lin.kind != "linear":
            raise AaexpError(f"model.vocoder.linear_output={vcfg['linear_output']!r} must name a linear output; outputs: {sorted(by_name)}")


def build(cfg, device: torch.device) -> Setup:
    """Contract, target, model, losses and vocoders from the composed config."""
    mcfg = OmegaConf.to_container(cfg.model, resolve=True)
    c = contract_from_config(mcfg)
    specs = output_specs(mcfg["outputs"])
    vcfg = mcfg["vocoder"]
    _check_outputs(specs, vcfg, c)
    seed = int(cfg.seed) if cfg.get("seed") is not None else 0
    vocoder = build_vocoder(vcfg, c, seed, device)  # fails early on a missing checkpoint
    target = load_target(OmegaConf.to_container(cfg.data, resolve=True), c, specs, device)
    n = mcfg["nca"]
    model = SpectrogramNCA(
        n["channels"], n["alive_channel"], n["hidden"], n["padding"], float(n["fire_rate"]), float(n["alpha_bias_init"]),
        n["alive"], float(n["alive_threshold"]), int(n["grid_height"] or max(s.n_bins for s in specs)), target.frames,
        specs, c.floor, c.ceiling,
    ).to(device)
    lcfg = OmegaConf.to_container(cfg.loss, resolve=True)
    a = lcfg["audio"]
    audio_loss = MultiResolutionSTFTLoss(a["fft_sizes"], a["hop_sizes"], a["win_lengths"]).to(device) if a["weight"] else None
    gl = GriffinLimVocoder(c, vcfg["griffin_lim_iters"], vcfg["momentum"], seed, vcfg["mel_inverse_iters"])
    return Setup(c, specs, target, model, SpectrogramLoss(lcfg, specs).to(device), vocoder, gl, vcfg, audio_loss, a)


def synthesise(s: Setup, outs: Mapping[str, torch.Tensor], n_iter: int | None = None, detach_phase: bool = False) -> torch.Tensor:
    """Audio from the grown spectrograms by `model.vocoder.source`: Tensor[B x T]."""
    v, refs = s.vcfg, s.target.refs
    parts = []
    if v["source"] in ("mel", "mix"):
        parts.append(s.vocoder.mel_to_audio(outs[v["mel_output"]], refs[v["mel_output"]], n_iter, detach_phase))
    if v["source"] in ("linear", "mix"):
        parts.append(s.griffin_lim.linear_to_audio(outs[v["linear_output"]], refs[v["linear_output"]], n_iter, detach_phase))
    if len(parts) == 1:
        return parts[0]
    n = min(p.shape[-1] for p in parts)
    return (1 - float(v["mix"])) * parts[0][..., :n] + float(v["mix"]) * parts[1][..., :n]


def compute_loss(s: Setup, outs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Spectrogram terms, plus the audio-domain MR-STFT term when `loss.audio.weight` > 0."""
    terms = s.loss(outs, s.target.spectrograms)
    if s.audio_loss is not None:
        audio = synthesise(s, outs, int(s.audio_cfg["griffin_lim_iters"]), detach_phase=True)
        terms["loss/audio_mrstft"] = s.audio_loss(audio, s.target.audio)
        terms["loss/total"] = terms["loss/total"] + float(s.audio_cfg["weight"]) * terms["loss/audio_mrstft"]
    return terms


def edge_metric(s: Setup, outs: Mapping[str, torch.Tensor], frames: int) -> dict[str, float]:
    """Edge-artifact metric of the vocoded output (mel, else linear) in linear energy."""
    name = s.vcfg["mel_output"] if s.vcfg["source"] in ("mel", "mix") else s.vcfg["linear_output"]
    c, ref = s.contract, s.target.refs[name]
    energy = lambda x: ct.power_to_magnitude(ct.decompress(x.detach()[0], c, ref), c) ** 2  # noqa: E731
    return {f"edge/{k}": v for k, v in measures.edge_energy(energy(outs[name]), energy(s.target.spectrograms[name]), frames).items()}


def _save_checkpoint(path: Path, s: Setup, opt: torch.optim.Optimizer, st: TrainState) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": s.model.state_dict(), "optimizer": opt.state_dict(), "iteration": st.iteration,
                "history": st.history, "died_at": st.died_at, "torch_rng": torch.get_rng_state()}, tmp)
    os.replace(tmp, path)  # atomic: an interrupted save never leaves a broken checkpoint


def _load_checkpoint(path: Path, s: Setup, opt: torch.optim.Optimizer) -> TrainState:
    ck = torch.load(path, map_location="cpu", weights_only=False)
    s.model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    torch.set_rng_state(ck["torch_rng"])
    return TrainState(ck["iteration"], ck["history"], died_at=ck.get("died_at"))


def _numpy(outs: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach()[0].cpu().numpy() for k, v in outs.items()}


def train(ctx, s: Setup) -> TrainState:
    """The optimisation loop; returns the final state. Ctrl-C saves a checkpoint before stopping."""
    tr = ctx.cfg.trainer
    opt = torch.optim.Adam(s.model.parameters(), lr=float(tr.lr))
    ck_path = ctx.out_dir / CHECKPOINT
    st = _load_checkpoint(ck_path, s, opt) if ctx.resumed and ck_path.is_file() else TrainState()
    if st.iteration:
        ctx.log.info("resumed from %s at iteration %d", ck_path, st.iteration)
    try:
        pbar = bar(range(st.iteration, int(tr.iterations)), enabled=ctx.progress, desc="tnca", initial=st.iteration,
                   total=int(tr.iterations))
        for _ in pbar:
            pbar.set_postfix(loss=f"{_iteration(ctx, s, opt, st, ck_path):.4g}")
    except KeyboardInterrupt:  # keep the finished iterations: `resume=` continues from here
        _save_checkpoint(ck_path, s, opt, st)
        raise
    _save_checkpoint(ck_path, s, opt, st)
    return st


def _iteration(ctx, s: Setup, opt: torch.optim.Optimizer, st: TrainState, ck_path: Path) -> float:
    """One growth + update, then the logging, images and checkpoints that fall due; returns the loss."""
    tr, tracker = ctx.cfg.trainer, ctx.tracker
    if st.clock is None:
        st.clock = (time.perf_counter(), st.iteration)
    s.model.train()
    x = s.model.grow(int(tr.growth_steps))
    outs = s.model.readout(x)
    terms = compute_loss(s, outs)
    total = terms["loss/total"]
    if not torch.isfinite(total):
        raise TrainingDiverged(f"loss became {total.item()} at iteration {st.iteration + 1}; last checkpoint: {ck_path}")
    opt.zero_grad(set_to_none=True)
    total.backward()
    if tr.grad_clip:
        torch.nn.utils.clip_grad_norm_(s.model.parameters(), float(tr.grad_clip))
    opt.step()
    st.iteration += 1
    if st.iteration % int(tr.log_every) == 0 or st.iteration in (1, int(tr.iterations)):  # 1: the starting point
        vals = {k: v.item() for k, v in terms.items()}
        vals.update(edge_metric(s, outs, int(ctx.cfg.eval.edge_frames)))
        vals["nca/alive_fraction"] = s.model.alive_fraction(x)
        if vals["nca/alive_fraction"] == 0.0 and st.died_at is None:
            st.died_at = st.iteration
            ctx.log.warning("tnca: every cell is dead at iteration %d; the grid cannot change any more "
                            "(try a lower trainer.lr)", st.iteration)
            tracker.set_tags({"tnca.grid_died_at": st.iteration})
        t0, done0 = st.clock
        vals["perf/iter_per_s"] = (st.iteration - done0) / max(time.perf_counter() - t0, 1e-9)
        for k, v in vals.items():
            st.history.setdefault(k, []).append((st.iteration, v))
        tracker.log_metrics(vals, step=st.iteration)
    if st.iteration % int(tr.image_every) == 0:
        hop_s = s.contract.hop_length / s.contract.sample_rate
        fig = plots.outputs_figure(_numpy(outs), _numpy(s.target.spectrograms), hop_s, s.contract.compression, f"iteration {st.iteration}")
        tracker.log_figure(fig, f"plots/growth/iter_{st.iteration:06d}.png")
    if st.iteration % int(tr.checkpoint_every) == 0:
        _save_checkpoint(ck_path, s, opt, st)
    return total.item()


def finish(ctx, s: Setup, st: TrainState) -> dict[str, float]:
    """Final growth, vocoding, measures and artifacts; returns the run's final metrics."""
    tr, tracker, out = ctx.cfg.trainer, ctx.tracker, ctx.out_dir
    ecfg = OmegaConf.to_container(ctx.cfg.eval, resolve=True)
    c, tgt = s.contract, s.target
    s.model.eval()
    states: list[torch.Tensor] = []
    with torch.no_grad():
        x = s.model.grow(int(tr.growth_steps), record=states)
        outs = s.model.readout(x)
        terms = compute_loss(s, outs)
        audio = synthesise(s, outs)[0].cpu().numpy()
        # The same vocoder on the true target: how good the audio could be if the NCA were perfect.
        ceiling = synthesise(s, tgt.spectrograms)[0].cpu().numpy()
    final = {f"final/{k.split('/', 1)[1]}": float(v) for k, v in terms.items()}
    final.update({f"final/{k}": v for k, v in edge_metric(s, outs, int(ecfg["edge_frames"])).items()})
    m = measures.measure(audio, c.sample_rate, tgt.source, tgt.source_sr, ecfg)
    mc = measures.measure(ceiling, c.sample_rate, tgt.source, tgt.source_sr, ecfg)
    final.update({k if "/" in k else f"audio/{k}": v for k, v in m.items()})
    final.update({f"ceiling/{k.split('/', 1)[-1]}": v for k, v in mc.items() if not k.startswith("reference/")})
    tracker.log_metrics(final, step=st.iteration)
    tracker.set_tags(undefined.tags(measures.undefined_reasons(final)))  # e.g. the centroid of a silent growth

    write_audio(out / "grown.wav", audio, c.sample_rate)
    write_audio(out / "target_vocoded.wav", ceiling, c.sample_rate)
    for name in ("grown.wav", "target_vocoded.wav"):
        tracker.log_artifact(out / name, "audio")
    tracker.log_text(measures.table({k: v for k, v in final.items() if not k.startswith("final/")}), "audio/measures.md")
    tracker.log_dict({"contract": c.to_dict(), "target": str(tgt.path), "frames": tgt.frames, "refs": tgt.refs}, "contract.json")
    hop_s = c.hop_length / c.sample_rate
    tracker.log_figure(plots.outputs_figure(_numpy(outs), _numpy(tgt.spectrograms), hop_s, c.compression, "final"), "plots/final.png")
    if st.history:
        tracker.log_figure(plots.loss_curve({k: v for k, v in st.history.items() if k.startswith("loss/")}), "plots/loss.png")
    if tr.growth_gif and states:
        spec0 = s.specs[0]
        every = max(1, math.ceil(len(states) / int(tr.gif_frames)))
        frames = [s.model.to_range(st_[0, spec0.channel], spec0).cpu().numpy() for st_ in states[every - 1 :: every]]
        t0 = tgt.spectrograms[spec0.name]
        plots.growth_gif(frames, out / "growth.gif", float(t0.min()), float(t0.max()))
        tracker.log_artifact(out / "growth.gif", "plots")
    torch.save(s.model.state_dict(), out / "nca.pt")
    tracker.log_artifact(out / "nca.pt", "model")
    return final


def run(ctx) -> dict[str, float]:
    """Study entry (cfg.study.entry): train, then vocode and measure. Returns the final metrics."""
    s = build(ctx.cfg, ctx.device)
    ctx.tracker.set_tags({"tnca.contract": s.contract.name, "tnca.vocoder": s.vcfg["name"], "tnca.padding": s.model.padding})
    ctx.log.info("tnca: contract=%s grid=%dx%d outputs=%s target=%s", s.contract.name, s.model.height, s.model.width,
                 [o.name for o in s.specs], s.target.path)
    st = train(ctx, s)
    return finish(ctx, s, st)
