"""`aaexp ui` serves the MLflow UI on the training store."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

from .helpers import REPO


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_starts_and_answers_on_localhost(tmp_path):
    port = _free_port()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aaexp.cli", "ui", "--port", str(port), "--tracking-uri", uri],
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
