"""`aaexp ui` serves the MLflow UI on the training store."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from .helpers import REPO


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_starts_and_answers_on_localhost(tmp_path):
    port = _free_port()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aaexp.commands.cli", "ui", "--port", str(port), "--tracking-uri", uri],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        assert f"http://127.0.0.1:{port}" in proc.stdout.readline()
        deadline, body = time.time() + 120, None
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                    assert resp.status == 200
                    body = resp.read().decode("utf-8", "replace")
                    break
            except OSError:
                time.sleep(1)
        assert body is not None and "mlflow" in body.lower()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def _chromium() -> str | None:
    import shutil

    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


def _page_text(browser: str, url: str, profile) -> str:
    """The rendered page as plain text (headless, fresh profile, no network beyond localhost)."""
    import re

    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                          "--virtual-time-budget=20000", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120).stdout
    dom = re.sub(r"<script.*?</script>|<style.*?</style>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


@pytest.mark.slow
def test_ui_opens_aaexp_runs_on_the_runs_table(tmp_path, mlflow_uri, capsys):
    """Issue 13: MLflow 3 opened aaexp's experiments on the GenAI overview (traces)."""
    import re

    from aaexp.commands import cli
    from aaexp.tracking import store as tracking

    from .helpers import TOY_CONF

    assert cli.main(["train", "--config-dir", str(TOY_CONF), "+experiment=toy_fast", f"hydra.run.dir={tmp_path / 'run'}"]) == 0
    link = re.search(r"http://127\.0\.0\.1:5000/(\S+)", capsys.readouterr().out).group(1)
    cl = tracking.client(mlflow_uri)
    exp = cl.get_experiment_by_name("aaexp-toy")
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development"
    [run] = cl.search_runs([exp.experiment_id])
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium installed (apt-get install -y chromium); the experiment kind tag was checked through the client")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "aaexp.commands.cli", "ui", "--port", str(port)], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        first = proc.stdout.readline()
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            try:
                urllib.request.urlopen(base + "/", timeout=5).close()
                break
            except OSError:
                time.sleep(1)
        experiment_page = _page_text(browser, tracking.ui_url(base, exp.experiment_id), tmp_path / "p1")
        assert experiment_page.strip().startswith("Runs - Experiment"), experiment_page[:300]
        assert run.info.run_name in experiment_page and "No data available for the selected time range" not in experiment_page
        run_page = _page_text(browser, f"{base}/{link}", tmp_path / "p2")  # the link `aaexp train` printed
        assert run.info.run_id in run_page and "train/loss" in run_page, run_page[:300]
        assert tracking.UI_QUERY in first  # `aaexp ui` prints a link that opens in model-training view
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
