"""`aaexp report --html`: pages built from a real MLflow store of tiny training runs, checked against the runs'
own logged numbers and files, and (slow) rendered in a real headless Chromium."""

from __future__ import annotations

import json
import math
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import soundfile as sf

from tests.aa.test_study import TINY
from tests.spine.chromium import Chromium, find_browser

DEMO = Path(__file__).resolve().parents[2] / "src" / "aaexp" / "assets" / "demo_teacher.nam"
AUDIO_FILES = ("di.wav", "teacher.wav", "teacher_x2.wav", "student.wav")
# The same small grid for training's final evaluation and for `aaexp eval` (so their teacher rows agree).
EVAL_SETS = ["window_s=0.1", "warmup.min_s=0.05", "sweep.seconds=0.2"]
# audio_check.json's shape: what was played, then per side its numbers (null: undefined)
AUDIO_NUMBERS = {"meta": {"source": "generated DI", "seconds": 0.1},
                 "sides": {"teacher": {"inharmonic_db": -40.104, "esr_lp_db": None},
                           "student": {"inharmonic_db": -51.25, "esr_lp_db": -23.456}},
                 "notes": [{"f0_hz": 82.4}]}


class Page(HTMLParser):
    """What a page holds: tables by id (rows of cell texts), every src/href, audio and img sources, the anchors' ids."""

    def __init__(self, path: Path):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.links: list[str] = []
        self.audio: list[str] = []
        self.images: list[str] = []
        self.ids: set[str] = set()
        self._table, self._cell = None, None
        self.text = path.read_text()
        self.feed(self.text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        for key in ("src", "href"):
            if key in a:
                self.links.append(a[key])
        if tag == "table":
            self._table = self.tables.setdefault(a.get("id", f"anon{len(self.tables)}"), [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "audio":
            self.audio.append(a["src"])
        elif tag == "img":
            self.images.append(a["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._table[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def expected_cell(value, threshold: float) -> str:
    """How a table shows a value, worked out here: 0.1 dB, ✓ below the threshold, n/a for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.1f} {'✓' if value < threshold else '✗'}"


def _sine_wavs(folder: Path) -> dict[str, Path]:
    """Stand-ins for the real-audio check's files: short sines at the demo teacher's rate, and a tiny PNG."""
    from PIL import Image

    folder.mkdir()
    t = np.arange(4410) / 44100
    out = {}
    for i, name in enumerate(AUDIO_FILES):
        sf.write(folder / name, 0.25 * np.sin(2 * np.pi * 220.0 * (i + 1) * t), 44100)
        out[name] = folder / name
    Image.new("RGB", (64, 32), (30, 60, 120)).save(folder / "spectrograms.png")
    (folder / "audio_check.json").write_text(json.dumps(AUDIO_NUMBERS))
    return out


@pytest.fixture(scope="module")
def aa_store(tmp_path_factory, _empty_mlflow_db):
    """Two tiny AA training runs in a real store: A (λ=0.3, sweep plots, a real-audio check's files logged by
    hand), B (λ=1) re-evaluated by `aaexp eval --oversample 2`; then `aaexp report --html`."""
    from aaexp.commands import cli
    from aaexp.tracking import store as tracking

    tmp = tmp_path_factory.mktemp("report_html")
    shutil.copy(_empty_mlflow_db, tmp / "mlflow.db")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.delenv("AAEXP_PARENT_RUN_ID", raising=False)
        # No end-of-training audio check: A gets the stand-in files below, B none (the "no check" case).
        common = [*TINY, "trainer.max_epochs=1", f"data.cache_dir={tmp / 'cache'}", "eval.audio_check.enabled=false"]
        assert cli.main(["train", "+experiment=lambda_0.3", *common, "eval.plots=true", f"hydra.run.dir={tmp / 'a'}"]) == 0
        assert cli.main(["train", "+experiment=baseline", *common, f"hydra.run.dir={tmp / 'b'}"]) == 0
        run_a, run_b = ((tmp / x / "mlflow_run_id.txt").read_text().strip() for x in "ab")
        assert cli.main(["eval", "--teacher", str(DEMO), "--student", str(tmp / "b" / "students" / "student_best.nam"),
                         "--oversample", "2", "--n-tones", "4", "--no-plots", *(f"--eval-set={s}" for s in EVAL_SETS),
                         "--device", "cpu", "--run-id", run_b, "--out", str(tmp / "b_eval")]) == 0
        wavs = _sine_wavs(tmp / "audio_check")
        cl = tracking.client(uri)
        for p in sorted((tmp / "audio_check").iterdir()):
            cl.log_artifact(run_a, str(p), "eval/audio_check")
        assert cli.main(["report", "--html", str(tmp / "html")]) == 0
    return {"uri": uri, "client": cl, "html": tmp / "html", "a": run_a, "b": run_b, "wavs": wavs, "tmp": tmp}


def _logged_table(store, run_id: str) -> dict:
    """The run's eval/table.json as MLflow holds it, downloaded apart from the report."""
    dst = store["tmp"] / "independent" / run_id
    dst.mkdir(parents=True, exist_ok=True)
    return json.loads(Path(store["client"].download_artifacts(run_id, "eval/table.json", str(dst))).read_text())


def _rows_by(table: dict, model: str) -> dict[str, dict]:
    return {r["band"]: r for r in table["rows"] if r["model"] == model}


def test_html_report_shows_the_logged_tables_plots_and_audio_with_relative_links(aa_store):
    html = aa_store["html"]
    index, page_path = html / "index.html", html / "aa" / "index.html"
    assert index.is_file() and page_path.is_file()
    assert sorted(p.name for p in html.iterdir()) == ["aa", "index.html"]      # only the AA study has runs here
    page = Page(page_path)
    cl = aa_store["client"]
    run = {k: cl.get_run(aa_store[k]) for k in "ab"}
    thr = {key: float(run["a"].data.params[f"eval.thresholds.{key}_db"]) for key in ("nmr_s", "hesr_r")}
    tables = {k: _logged_table(aa_store, aa_store[k]) for k in "ab"}
    assert {r["model"] for r in tables["b"]["rows"]} == {"teacher", "teacher ×2", "student"}

    for key in ("nmr_s", "hesr_r"):
        head, *rows = page.tables[f"table-{key}"]
        bands = head[1:]
        assert bands == list(dict.fromkeys(r["band"] for r in tables["a"]["rows"]))
        by_label = {r[0]: r[1:] for r in rows}
        # the teacher is the same model on the same grid in both runs: one row; teacher ×2 only B's eval has
        assert [r[0] for r in rows[:2]] == ["teacher", "teacher ×2"] and len(rows) == 4, [r[0] for r in rows]
        for label, rid, model in (("teacher", "a", "teacher"), ("teacher ×2", "b", "teacher ×2")):
            logged = _rows_by(tables[rid], model)
            assert by_label[label] == [expected_cell(logged[b][f"{key}_db"], thr[key]) for b in bands], (key, label)
        for k in "ab":
            [label] = [lab for lab in by_label if lab.endswith(f"[{aa_store[k][:8]}]")]
            logged = _rows_by(tables[k], "student")
            assert by_label[label] == [expected_cell(logged[b][f"{key}_db"], thr[key]) for b in bands], (key, k)
            # ... which are the run's own metrics (training logged A's; `aaexp eval --run-id` re-logged B's)
            assert by_label[label] == [expected_cell(run[k].data.metrics[f"eval/{key}/{b}"], thr[key]) for b in bands]
            assert f"run-{aa_store[k][:8]}" in page.ids
        over = [expected_cell(run["b"].data.metrics[f"eval/oversample_2/{key}/{b}"], thr[key]) for b in bands]
        assert by_label["teacher ×2"] == over

    # each run's own table lists every model of its evaluation, band by band
    own_b = page.tables[f"table-{aa_store['b'][:8]}"]
    assert [r[2] for r in own_b[1:4]] == ["teacher", "teacher ×2", "student"]
    assert own_b[1][3] == expected_cell(tables["b"]["rows"][0]["nmr_s_db"], thr["nmr_s"])
    # params and verdict
    for k in "ab":
        head, values = page.tables[f"params-{aa_store[k][:8]}"]
        assert head[0] == "loss.lam" and values[0] == run[k].data.params["loss.lam"]
    assert run["a"].data.params["loss.lam"] != run["b"].data.params["loss.lam"]
    assert page.text.count("verdict: n/a (no baseline)") == 2

    # every link is relative and points at a file of the folder; the audio copies are the logged files
    for link in page.links:
        if link.startswith("#"):
            continue
        assert not urlparse(link).scheme and not link.startswith("/"), link
        assert (page_path.parent / link).is_file(), link
    a8, b8 = aa_store["a"][:8], aa_store["b"][:8]
    for name in ("bands.png", "tones.png", "sweep_spectrograms.png"):
        assert f"runs/{a8}/eval/plots/{name}" in page.images
    assert f"runs/{b8}/eval/plots/bands.png" in page.images and f"runs/{b8}/eval/plots/sweep_spectrograms.png" not in page.images
    assert f"runs/{a8}/eval/audio_check/spectrograms.png" in page.images
    for src in page.images:
        assert (page_path.parent / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", src
    for name, original in aa_store["wavs"].items():
        copy = page_path.parent / f"runs/{a8}/eval/audio_check/{name}"
        assert f"runs/{a8}/eval/audio_check/{name}" in page.audio
        assert copy.read_bytes() == original.read_bytes()
    assert len(page.audio) == 2 * len(AUDIO_FILES)              # the side-by-side table and A's card
    assert not any(b8 in src for src in page.audio)
    assert page.text.count("no real-audio check in this run") == 1   # B's card
    # audio_check.json's numbers per side, as the report table writes numbers (2 decimals, n/a)
    assert page.tables[f"audio-{a8}"] == [["side", "inharmonic_db", "esr_lp_db"], ["teacher", "-40.10", "n/a"],
                                         ["student", "-51.25", "-23.46"]]
    assert Page(index).links == ["aa/index.html"]


@pytest.mark.slow
def test_html_report_renders_in_headless_chromium_with_every_image_and_audio_loaded(aa_store, tmp_path):
    exe = find_browser()
    if exe is None:
        pytest.skip("no Chromium found (looked for $AAEXP_CHROMIUM and chromium, chromium-browser, google-chrome on PATH); "
                    "install Debian's `chromium` package to run this test")
    page_path = aa_store["html"] / "aa" / "index.html"
    browser = Chromium(exe, tmp_path / "profile")
    try:
        found = browser.load(page_path)
        browser.screenshot(tmp_path / "report.png")
        # a page with a missing image and a missing sound: the same checks must see both fail
        (tmp_path / "broken.html").write_text('<img src="missing.png"><audio preload="metadata" src="missing.wav"></audio>')
        broken = browser.load(tmp_path / "broken.html")
    finally:
        browser.close()

    assert found["failed"] == []
    ids = {t["id"] for t in found["tables"]}
    assert {"table-nmr_s", "table-hesr_r", f"table-{aa_store['a'][:8]}", f"table-{aa_store['b'][:8]}"} <= ids
    nmr = next(t for t in found["tables"] if t["id"] == "table-nmr_s")
    assert [r[0] for r in nmr["rows"][1:3]] == ["teacher", "teacher ×2"] and len(nmr["rows"]) == 5
    assert len(found["images"]) == 6          # A: 3 plots + audio spectrograms; B: 2 plots
    for img in found["images"]:
        assert img["complete"] and img["naturalWidth"] > 0, img
    assert len(found["audios"]) == 2 * len(AUDIO_FILES)
    for audio in found["audios"]:
        assert audio["error"] is None and audio["readyState"] >= 1, audio
        assert audio["duration"] == pytest.approx(0.1), audio        # the 4410-sample sines at 44.1 kHz
    shot = (tmp_path / "report.png").read_bytes()
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 10_000

    assert broken["images"][0]["naturalWidth"] == 0 and broken["audios"][0]["error"] is not None
    assert {Path(urlparse(u).path).name for u, _ in broken["failed"]} == {"missing.png", "missing.wav"}


@pytest.mark.slow
def test_a_study_without_per_band_tables_gets_its_metrics_and_logged_plots(tmp_path, mlflow_uri):
    """EQ (packaged synthetic data, quick profile): the metrics table and the run's plots and Markdown tables."""
    from aaexp.commands import cli
    from aaexp.tracking import store as tracking

    assert cli.main(["train", "+experiment=eq_v2", "trainer=quick", "progress=false", f"hydra.run.dir={tmp_path / 'eq'}"]) == 0
    assert cli.main(["report", "--html", str(tmp_path / "html")]) == 0
    page_path = tmp_path / "html" / "eq" / "index.html"
    page = Page(page_path)
    cl = tracking.client(mlflow_uri)
    [run] = cl.search_runs([cl.get_experiment_by_name("aaexp-eq").experiment_id])
    head, *rows = page.tables["table-metrics"]
    assert head == ["metric", f"eq_v2 [{run.info.run_id[:8]}]"]
    wanted = {k: v for k, v in run.data.metrics.items() if k.startswith("eval/")}     # the default glob, eval/*
    assert {r[0] for r in rows} == set(wanted)
    for name, cell in rows:
        assert cell == ("n/a" if math.isnan(wanted[name]) else f"{wanted[name]:.2f}"), name
    logged = {a.path for a in cl.list_artifacts(run.info.run_id, "plots")}
    assert {f"runs/{run.info.run_id[:8]}/{p}" for p in logged if p.endswith(".png")} == set(page.images)
    for link in (x for x in page.links if not x.startswith("#")):
        assert not urlparse(link).scheme and (page_path.parent / link).is_file(), link
    decoded = (tmp_path / "html" / "eq" / "runs" / run.info.run_id[:8] / "tables" / "decoded.md").read_text()
    assert decoded.splitlines()[0] in page.text                # the Markdown tables are shown as logged
