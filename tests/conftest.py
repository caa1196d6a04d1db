"""Shared fixtures: where the real data lives, and an isolated MLflow store per test."""

import os
from pathlib import Path

import pytest
import torch

from tests.shared_data import require_data

REPO = Path(__file__).resolve().parents[1]

# One thread by default: the suite's tensors are small and CI has 2 cores shared with the
# subprocesses some tests start; AAEXP_TEST_THREADS overrides it.
torch.set_num_threads(int(os.environ.get("AAEXP_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the repo, or $AAEXP_DATA; tests read it there, never copy it.
    Absent: the test skips with the reason (fails under CI=true)."""
    return require_data()


@pytest.fixture(scope="session")
def _empty_mlflow_db(tmp_path_factory) -> Path:
    """One migrated, empty store; creating the schema costs seconds, copying it does not."""
    from aaexp.tracking import store as tracking

    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    tracking.client(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch, _empty_mlflow_db) -> str:
    """A fresh SQLite store for one test, exported so subprocesses use it too."""
    import shutil

    shutil.copy(_empty_mlflow_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("AAEXP_PARENT_RUN_ID", raising=False)
    return uri
