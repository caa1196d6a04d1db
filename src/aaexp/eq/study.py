"""`study=eq`: train the semantic EQ autoencoder (V1 or V2) and measure what tells them apart.

run(ctx): load SAFE-DB (or the synthetic set), split per descriptor, normalise, train with
reconstruction + supervised contrastive loss, then decode every descriptor's latent centroid,
interpolate warm -> bright, and log metrics, tables, plots and the model file to MLflow.
"""

from __future__ import annotations

import numpy as np
import torch

from aaexp.core import undefined
from aaexp.eq import data as eq_data
from aaexp.eq import evaluation, normalise, plots
from aaexp.eq import model as eq_model
from aaexp.eq.model_file import TrainedEq, save_model
from aaexp.eq.params import PluginRanges
from aaexp.eq.train import Tensors, train

MODEL_FILE = "eq_model.pt"


def _tensors(data: eq_data.EqData, norm, vocab: dict[str, int], idx: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
    x = norm.forward(torch.as_tensor(data.params[idx], dtype=torch.float64)).float().to(device)
    y = torch.tensor([vocab[data.labels[i]] for i in idx], dtype=torch.long, device=device)
    return x, y


def _score(m: dict[str, float], ev: evaluation.Evaluation, key: str, spec: str = ".2f") -> str:
    """A clustering score as text: the number, or n/a with the reason it does not exist."""
    why = ev.undefined.get(key)
    return f"n/a (undefined: {why})" if why else undefined.fmt(m.get(key, float("nan")), spec)


def _verdict(m: dict[str, float], ev: evaluation.Evaluation) -> str:
    bad = [d for d in ev.descriptors if not d.valid]
    sil = _score(m, ev, "eval/silhouette/all")
    if not bad:
        return f"all {len(ev.descriptors)} decoded descriptors valid; silhouette {sil}"
    return (f"INVALID: {len(bad)}/{len(ev.descriptors)} decoded descriptors out of the plugin ranges "
            f"(frequencies up to {m['eval/decoded_freq_hz/max']:.4g} Hz); silhouette {sil}")


def run(ctx) -> dict[str, float]:
    """The study entry (`study.entry`): returns the final eval/* metrics."""
    cfg, log = ctx.cfg, ctx.log
    ranges = PluginRanges.from_cfg(cfg.data.plugin)
    data = eq_data.load(cfg.data)
    train_idx, val_idx = eq_data.split(data, float(cfg.data.val_fraction), int(cfg.data.split_seed))
    counts = data.counts()
    log.info("EQ data: %s, %d rows, %d descriptors (%s), %d train / %d held out; %d malformed rows skipped",
             data.source, len(data.labels), len(counts),
             ", ".join(f"{w} {counts[w]}" for w in data.descriptors[:6]), len(train_idx), len(val_idx), data.stats["rows_skipped"])
    ctx.tracker.log_metrics({f"data/{k}": float(v) for k, v in data.stats.items()}
                            | {"data/train_rows": len(train_idx), "data/val_rows": len(val_idx)})
    ctx.tracker.log_dict({"source": data.source, "stats": data.stats, "skipped_lines": data.skipped,
                          "descriptor_rows": {w: counts[w] for w in data.descriptors}}, "data/descriptors.json")

    norm = normalise.build(cfg.model.norm, data.params[train_idx])
    vocab = {w: i for i, w in enumerate(data.descriptors)}
    x_tr, y_tr = _tensors(data, norm, vocab, train_idx, ctx.device)
    x_va, y_va = _tensors(data, norm, vocab, val_idx, ctx.device)
    model = eq_model.build(cfg.model, ranges).to(ctx.device)
    tr = cfg.trainer
    n_epochs = int(tr.max_epochs)
    log.info("EQ %s: %d weights, %d epochs, batch %d, lr %g, contrastive weight %g -> %g", cfg.model.name,
             sum(p.numel() for p in model.parameters()), n_epochs, tr.batch_size, tr.lr,
             cfg.loss.weights.contrastive.start, cfg.loss.weights.contrastive.end)
    result = train(ctx, model, Tensors(x_tr, y_tr, x_va, y_va), cfg.loss)

    trained = TrainedEq(model, norm, ranges, {})
    ev = evaluation.evaluate(trained, data, train_idx, val_idx, cfg.eval)
    trained.centroids = ev.centroids
    m = ev.metrics
    ctx.tracker.log_metrics(m, step=n_epochs)
    verdict = _verdict(m, ev)
    ctx.tracker.set_tags({"verdict": verdict, "eq.model": cfg.model.name, **undefined.tags(ev.undefined)})

    decoded_md = evaluation.table_markdown(ev.descriptors, counts)
    interp_md = evaluation.table_markdown(ev.interpolation)
    ctx.tracker.log_text(decoded_md + "\n", "tables/decoded.md")
    ctx.tracker.log_text(interp_md + "\n", "tables/interpolation.md")
    ctx.tracker.log_dict({"metrics": m, "decoded": evaluation.as_dict(ev.descriptors),
                          "interpolation": evaluation.as_dict(ev.interpolation), "undefined": ev.undefined}, "results.json")
    title = f"{cfg.model.name} on {'SAFE-DB' if cfg.data.path else 'synthetic data'} ({n_epochs} epochs)"
    ctx.tracker.log_figure(plots.responses([d for d in ev.descriptors if d.name in cfg.eval.descriptors], ev.interpolation,
                                                   cfg.eval, ranges.shelf_q, title), "plots/eq_responses.png")
    ctx.tracker.log_figure(plots.latent_projection(ev, data.labels, int(cfg.eval.projection_top_k), list(cfg.eval.interpolate), title),
                           "plots/latent_pca.png")
    ctx.tracker.log_figure(plots.losses(result.history, title), "plots/losses.png")
    path = save_model(ctx.out_dir / MODEL_FILE, trained, cfg.model, cfg.data.plugin,
                      {"data": data.source, "epochs": n_epochs, "descriptors": data.descriptors})
    ctx.tracker.log_artifact(path)

    log.info("decoded settings (latent centroids):\n%s", decoded_md)
    log.info("interpolation %s:\n%s", " -> ".join(cfg.eval.interpolate), interp_md)
    log.info("silhouette %s (held out %s), Davies-Bouldin %s; valid: centroids %.0f%%, held-out reconstructions %s%%; %s",
             _score(m, ev, "eval/silhouette/all", ".3f"), _score(m, ev, "eval/silhouette/val", ".3f"),
             _score(m, ev, "eval/davies_bouldin/all"), 100 * m["eval/valid_share/centroids"],
             undefined.fmt(100 * m.get("eval/valid_share/val", float("nan")), ".0f"), verdict)
    return m
