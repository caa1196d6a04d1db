"""Where the third-party test data lives, and what a test that needs it does when it is absent.

The data (NAM models, the TNCA violin, SAFE-DB; see README "Test data") is not in the repository.
It is looked for in ../shared/data beside the repo, or wherever AAEXP_DATA points. A clone
without it skips those tests with one reason; CI (CI=true) fails them, so coverage cannot vanish.
"""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = "AAEXP_DATA"
DEFAULT = (REPO / ".." / "shared" / "data").resolve()


def data_dir() -> Path:
    value = os.environ.get(ENV)
    return Path(value).expanduser().resolve() if value else DEFAULT


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_data() -> Path:
    """The data folder, or skip the calling test (fail it under CI=true) naming what is missing."""
    d = data_dir()
    if d.is_dir():
        return d
    msg = f"third-party test data not found at {d}; put it there or set {ENV}=/path/to/data"
    if in_ci():
        pytest.fail(f"{msg} (CI=true: a missing data folder is an error, not a skip)", pytrace=False)
    pytest.skip(msg)
