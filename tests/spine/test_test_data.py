"""A clone without the third-party data: tests that need it skip with the reason, or fail under CI."""

import os
import subprocess
import sys

from .helpers import REPO

TARGET = "tests/eq/test_data.py::test_real_csv_counts"


def _pytest(tmp_path, **env):
    full = {k: v for k, v in os.environ.items() if k != "CI"} | {"AAEXP_DATA": str(tmp_path / "nowhere"), **env}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", TARGET],
                          cwd=REPO, env=full, capture_output=True, text=True, timeout=300)


def test_missing_data_skips_with_the_folder_and_the_variable(tmp_path):
    r = _pytest(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 skipped" in r.stdout and str(tmp_path / "nowhere") in r.stdout and "AAEXP_DATA=" in r.stdout


def test_missing_data_under_ci_is_an_error(tmp_path):
    r = _pytest(tmp_path, CI="true")
    assert r.returncode != 0 and "skipped" not in r.stdout
    assert "CI=true" in r.stdout and str(tmp_path / "nowhere") in r.stdout
