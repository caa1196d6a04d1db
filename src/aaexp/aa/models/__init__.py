"""Neural amp model files: load NAM (.nam WaveNet 0.5.x/0.6+, LSTM) and Proteus (.json) models, write them back.

    model = load_model("teacher.nam")          # AmpModel: Tensor[B x T] -> Tensor[B x T], float64
    export_model(student, "student.nam", note="anti-aliasing fine-tune, lambda=0.3")
"""

from pathlib import Path

from .amp_model import AmpModel, ModelSource
from .errors import ModelFileError
from .model_file import DEFAULT_SAMPLE_RATE, LSTM_WARMUP_S, SampleRateWarning, export_model, load_model

# The packaged default teacher: a small NAM WaveNet of an aliasing-prone distortion (scripts/make_demo_teacher.py).
DEMO_TEACHER: Path = Path(__file__).resolve().parents[2] / "assets" / "demo_teacher.nam"

__all__ = ["AmpModel", "ModelSource", "ModelFileError", "SampleRateWarning", "load_model", "export_model",
           "DEMO_TEACHER", "DEFAULT_SAMPLE_RATE", "LSTM_WARMUP_S"]
