"""`aaexp eval --eq-model eq_model.pt [--eq-words warm bright] [--eq-morph warm bright]`: decode
descriptors from a trained EQ autoencoder without retraining.

Each word decodes from the latent centroid stored in the model file; the morph walks the straight
line between two centroids. Every setting is checked against the plugin ranges and summarised by
its low-mid minus high tilt (definitions: conf/eval/eq.yaml, src/aaexp/eq/evaluation.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf

from aaexp.core.config import CONF_DIR
from aaexp.core.errors import AaexpError
from aaexp.tracking.eval_run import eval_tracker

DESCRIPTION = "decode descriptors from a trained semantic-EQ model (EQ)"


def add_arguments(group) -> None:
    group.add_argument("--eq-model", metavar="PT", help="eq_model.pt from an EQ training run's folder")
    group.add_argument("--eq-words", nargs="+", metavar="WORD",
                       help="descriptors to decode (default: eval.descriptors, warm bright; 'all' for every one in the model)")
    group.add_argument("--eq-morph", nargs=2, metavar=("FROM", "TO"),
                       help="interpolate between two descriptors (default: eval.interpolate)")
    group.add_argument("--eq-alphas", nargs="+", type=float, metavar="A", help="interpolation steps (default: eval.alphas)")


def claims(args) -> bool:
    return getattr(args, "eq_model", None) is not None


def run(args) -> int:
    import matplotlib.pyplot as plt

    from aaexp.eq import evaluation, plots
    from aaexp.eq.model_file import load_model

    ev_cfg = OmegaConf.load(CONF_DIR / "eval" / "eq.yaml")
    path = Path(args.eq_model).expanduser()
    if not path.is_file():
        raise AaexpError(f"--eq-model {args.eq_model}: no such file")
    trained = load_model(path)
    known = list(trained.centroids)
    words = known if args.eq_words == ["all"] else list(args.eq_words or ev_cfg.descriptors)
    a, b = args.eq_morph or list(ev_cfg.interpolate)
    alphas = list(args.eq_alphas or ev_cfg.alphas)
    unknown = [w for w in [*words, a, b] if w not in trained.centroids]
    if unknown:
        raise AaexpError(f"descriptor(s) {', '.join(sorted(set(unknown)))} not in this model; it knows: {', '.join(known)}")

    decoded = [evaluation.decode_setting(w, trained.decode(trained.centroids[w][None])[0], trained, ev_cfg) for w in words]
    morph, _ = evaluation.morph(trained, trained.centroids, a, b, alphas, ev_cfg)
    tables = {"eq_decoded.md": evaluation.table_markdown(decoded), "eq_interpolation.md": evaluation.table_markdown(morph)}
    print(f"model: {path}\n\n{tables['eq_decoded.md']}\n\n{tables['eq_interpolation.md']}")
    bad = [d for d in decoded + morph if not d.valid]
    for d in bad:
        print(f"out of the plugin ranges: {d.name}: {d.note}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in tables.items():
        (out / name).write_text(text + "\n")
    fig = plots.responses(decoded, morph, ev_cfg, trained.ranges.shelf_q, f"{path.parent.name}/{path.name}")
    fig.savefig(out / "eq_responses.png", dpi=120, bbox_inches="tight")
    result = {"model": str(path), "decoded": evaluation.as_dict(decoded), "interpolation": evaluation.as_dict(morph)}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    with eval_tracker(args, "eq", f"eval {path.parent.name}") as tracker:
        if tracker is not None:
            tracker.log_params({"eq_model": str(path), "words": " ".join(words), "morph": f"{a} {b}"})
            tracker.log_metrics({"eval/valid_share/decoded": sum(d.valid for d in decoded) / len(decoded),
                                 "eval/valid_share/interp": sum(d.valid for d in morph) / len(morph),
                                 **{f"eval/tilt_db/{d.name}": d.tilt_db for d in decoded}})
            for name, text in tables.items():
                tracker.log_text(text + "\n", f"tables/{name}")
            tracker.log_figure(fig, "plots/eq_responses.png")
    plt.close(fig)
    print(f"\ntables and plot in {out}/")
    return 0
