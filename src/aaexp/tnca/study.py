"""`run(ctx)`: grow the violin's spectrogram with an NCA, vocode it, measure it, log it all.

Training runs on the spine's loop, one update per unit (`trainer.steps`). Every
`trainer.log_every_n_steps` steps: loss terms and the edge-artifact metric; every
`trainer.image_every`: a grown-vs-target image; at the end: the vocoded audio (grown.wav), the
target vocoded by the same vocoder (the vocoder's ceiling), audio measures of both against the
target file, a growth GIF, the model. A checkpoint every `trainer.checkpoint_every` steps (and on
Ctrl-C) lets `resume=true` continue an interrupted run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
from omegaconf import OmegaConf

from aaexp.core import undefined
from aaexp.core.errors import AaexpError
from aaexp.core.files import atomic_save
from aaexp.tnca import contract as ct
from aaexp.tnca import measures, plots
from aaexp.tnca.audio_io import write_audio
from aaexp.tnca.contract import VocoderContract, contract_from_config
from aaexp.tnca.losses import MultiResolutionSTFTLoss, SpectrogramLoss
from aaexp.tnca.nca import OutputSpec, SpectrogramNCA, output_specs
from aaexp.tnca.target import Target, load_target
from aaexp.tnca.vocoders import GriffinLimVocoder, build_vocoder
from aaexp.training.loop import Loop, LoopState, Task, series

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
class TrainState(LoopState):
    """The loop's counters (`step` = iterations done) and the first logged step with no live cell left."""

    died_at: int | None = None


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


def _numpy(outs: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach()[0].cpu().numpy() for k, v in outs.items()}


class _GrowTask(Task):
    """One growth + update per unit; logging, images and the dead-grid check when they fall due."""

    def __init__(self, ctx, s: Setup, opt: torch.optim.Optimizer):
        self.ctx, self.s, self.opt, self.tr = ctx, s, opt, ctx.cfg.trainer
        self.clock: tuple[float, int] | None = None   # (time, step) when this process started training
        self.x = self.outs = self.terms = None

    def begin(self, loop, state, fresh):
        self.clock = (time.perf_counter(), state.step)

    def items(self, unit, state):
        return (None,)

    def step(self, item, state):
        s, tr = self.s, self.tr
        s.model.train()
        self.x = s.model.grow(int(tr.growth_steps))
        self.outs = s.model.readout(self.x)
        self.terms = compute_loss(s, self.outs)
        total = self.terms["loss/total"]
        self.loop.check(total, self.terms, state.epoch + 1, state.step + 1)
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        if tr.grad_clip:
            torch.nn.utils.clip_grad_norm_(s.model.parameters(), float(tr.grad_clip))
        self.opt.step()
        state.step += 1
        return {"loss": total.detach()}

    def end_unit(self, unit, state, means, started):
        it, last = state.step, int(self.tr.steps)
        if not (it % int(self.tr.log_every_n_steps) == 0 or it in (1, last)):   # 1: the starting point
            return {}
        vals = {k: v.item() for k, v in self.terms.items()}
        vals.update(edge_metric(self.s, self.outs, int(self.ctx.cfg.eval.edge_frames)))
        vals["nca/alive_fraction"] = self.s.model.alive_fraction(self.x)
        if vals["nca/alive_fraction"] == 0.0 and state.died_at is None:
            state.died_at = it
            self.ctx.log.warning("tnca: every cell is dead at iteration %d; the grid cannot change any more "
                                 "(try a lower trainer.lr)", it)
            self.ctx.tracker.set_tags({"tnca.grid_died_at": it})
        t0, done0 = self.clock
        vals["perf/iter_per_s"] = (it - done0) / max(time.perf_counter() - t0, 1e-9)
        return vals

    def after_unit(self, state, metrics):
        if state.step % int(self.tr.image_every) == 0:
            s = self.s
            hop_s = s.contract.hop_length / s.contract.sample_rate
            fig = plots.outputs_figure(_numpy(self.outs), _numpy(s.target.spectrograms), hop_s, s.contract.compression,
                                       f"iteration {state.step}")
            self.ctx.tracker.log_figure(fig, f"plots/growth/iter_{state.step:06d}.png")


def train(ctx, s: Setup) -> TrainState:
    """The optimisation loop; returns the final state. Ctrl-C saves a checkpoint before stopping."""
    opt = torch.optim.Adam(s.model.parameters(), lr=float(ctx.cfg.trainer.lr))
    task = _GrowTask(ctx, s, opt)
    task.loop = Loop(ctx, s.model, opt, ctx.out_dir / CHECKPOINT, unit="step", state_cls=TrainState, progress="units",
                     desc="tnca")
    state, _ = task.loop.fit(task)
    return state


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
    tracker.log_metrics(final, step=st.step)
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
        tracker.log_figure(plots.loss_curve({k: v for k, v in series(st.history).items() if k.startswith("loss/")}), "plots/loss.png")
    if tr.growth_gif and states:
        spec0 = s.specs[0]
        every = max(1, math.ceil(len(states) / int(tr.gif_frames)))
        frames = [s.model.to_range(st_[0, spec0.channel], spec0).cpu().numpy() for st_ in states[every - 1 :: every]]
        t0 = tgt.spectrograms[spec0.name]
        plots.growth_gif(frames, out / "growth.gif", float(t0.min()), float(t0.max()))
        tracker.log_artifact(out / "growth.gif", "plots")
    atomic_save(s.model.state_dict(), out / "nca.pt")
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
