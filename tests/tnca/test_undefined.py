"""Issue 13.7: a silent file has no spectral centroid; it reads n/a with the reason, NaN + tag in MLflow."""

import math

import numpy as np
import soundfile as sf

from tests.spine.helpers import aaexp, runs


def test_silent_wav_centroid_is_undefined_not_zero(tmp_path, mlflow_uri):
    sf.write(tmp_path / "silent.wav", np.zeros(22050), 22050)
    r = aaexp("eval", "--audio", str(tmp_path / "silent.wav"), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if "audio/centroid_hz" in line)
    assert "n/a (undefined: silent audio" in row
    assert "| audio/rms | 0 |" in r.stdout  # defined measures stay numbers
    assert "Warning" not in r.stderr and "warn" not in r.stderr.lower(), r.stderr
    [(_, run)] = runs(mlflow_uri)
    assert math.isnan(run.data.metrics["audio/centroid_hz"])
    assert run.data.tags["undefined.audio/centroid_hz"].startswith("undefined: silent audio")
