"""Write `OUT_DIR/<study>/index.html` (+ its copied artifacts) per study, and `OUT_DIR/index.html` linking them."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from aaexp.commands.report_html import other_page
from aaexp.commands.report_html.run_files import RunFiles
from aaexp.commands.report_runs import Layout, select_runs, short_labels
from aaexp.core.errors import AaexpError
from aaexp.tracking import store as tracking

TITLES = {"aa": "Study 1 — anti-aliasing of neural amp models", "tnca": "Study 2 — TNCA (timbre-growing neural cellular automaton)",
          "eq": "Study 3 — semantic EQ morphing"}
ORDER = list(TITLES)
MAX_VARYING_PARAMS = 12    # a card lists at most this many of the params that differ between runs; all sit in a fold


def study_of(run, experiment_name: str) -> str:
    """The run's `study` tag (set by train and eval), else its experiment's name without `aaexp-`."""
    return run.data.tags.get("study") or experiment_name.removeprefix("aaexp-") or "other"


def shown_params(runs, chosen: list[str]) -> list[str]:
    """The params a card lists: the chosen ones the runs have, then those whose value differs between runs."""
    keys = sorted({k for r in runs for k in r.data.params})
    have = [p for p in chosen if any(p in r.data.params for r in runs)]
    varying = [k for k in keys if k not in have and len({r.data.params.get(k) for r in runs}) > 1]
    return have + varying[:MAX_VARYING_PARAMS]


def environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    return Environment(loader=PackageLoader("aaexp.commands.report_html", "templates"), autoescape=select_autoescape(["html", "j2"]),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def study_page(env, cl, study: str, runs, out: Path, chosen_params: list[str], metric_glob: str, experiments: list[str]) -> Path:
    """Copy what the study's runs show into `out` and render `out/index.html`."""
    out.mkdir(parents=True, exist_ok=True)
    labels = short_labels([r.info.run_name or r.info.run_id[:8] for r in runs])
    keys = shown_params(runs, chosen_params)
    cards = []
    if study == "aa":
        from aaexp.commands.report_html import aa_page as page_module
    else:
        page_module = other_page
    for r, label in zip(runs, labels):
        params = [(k, r.data.params.get(k, "")) for k in keys]
        cards.append(page_module.run_card(r, RunFiles(cl, r, out), f"{label} [{r.info.run_id[:8]}]", params))
    context = {"title": TITLES.get(study, f"Study {study}"), "study": study, "cards": cards,
               "generated": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
               "experiments": experiments}
    if study == "aa":
        context.update(page_module.page(cards))
        template = "aa.html.j2"
    else:
        context["metrics"] = other_page.metrics_table(runs, [c["label"] for c in cards], metric_glob, Layout.from_params(runs).sort_key)
        template = "other.html.j2"
    path = out / "index.html"
    path.write_text(env.get_template(template).render(**context))
    return path


def write_html(uri: str | None, experiment_names: list[str] | None, out_dir: Path, chosen_params: list[str],
               metric_glob: str) -> list[Path]:
    """One folder per study under out_dir (the runs `aaexp report` selects), plus an index; the pages written."""
    # MLflow draws a progress bar per downloaded file: dozens of bars for one page
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    cl = tracking.client(uri)
    runs = select_runs(cl, experiment_names)
    if not runs:
        raise AaexpError("no finished runs to report")
    exp_names = {e.experiment_id: e.name for e in cl.search_experiments()}
    by_study: dict[str, list] = {}
    for r in runs:
        by_study.setdefault(study_of(r, exp_names.get(r.info.experiment_id, "")), []).append(r)
    studies = sorted(by_study, key=lambda s: (ORDER.index(s) if s in ORDER else len(ORDER), s))
    env = environment()
    pages = [study_page(env, cl, s, by_study[s], out_dir / s, chosen_params, metric_glob,
                        sorted({exp_names.get(r.info.experiment_id, "") for r in by_study[s]})) for s in studies]
    index = out_dir / "index.html"
    index.write_text(env.get_template("index.html.j2").render(
        studies=[{"href": f"{s}/index.html", "title": TITLES.get(s, s), "n_runs": len(by_study[s])} for s in studies]))
    return [index, *pages]
