"""A trained EQ autoencoder as one self-describing file; `load_model` is the mirror of `save_model`.

Contents: format version, metadata, the model and plugin configs it was built from, the
normaliser, the descriptor vocabulary with latent centroids, and the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from aaexp.core.errors import AaexpError
from aaexp.core.files import atomic_save, load_safely
from aaexp.eq import model as eq_model
from aaexp.eq import normalise
from aaexp.eq.params import PluginRanges

FORMAT = "aaexp-eq-autoencoder"
VERSION = 1


@dataclass
class TrainedEq:
    """What decoding a descriptor needs."""

    model: eq_model.EqAutoencoder
    normaliser: normalise.ZScore | normalise.LogMinMax
    ranges: PluginRanges
    centroids: dict[str, np.ndarray]  # descriptor -> Array[latent_dim]

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Latent codes to physical settings. Array[N x latent_dim] -> Array[N x 13] (dB, Hz, Q)."""
        dev = next(self.model.parameters()).device
        self.model.eval()  # no dropout when decoding
        with torch.no_grad():
            y = self.model.decoder(torch.as_tensor(np.asarray(z), dtype=torch.float32, device=dev))
            return self.normaliser.inverse(y.double()).cpu().numpy()

    def encode(self, params: np.ndarray) -> np.ndarray:
        """Physical settings to latent codes. Array[N x 13] -> Array[N x latent_dim]."""
        dev = next(self.model.parameters()).device
        self.model.eval()
        with torch.no_grad():
            x = self.normaliser.forward(torch.as_tensor(np.asarray(params), dtype=torch.float64)).float().to(dev)
            return self.model.encoder(x)[0].double().cpu().numpy()


def save_model(path: str | Path, trained: TrainedEq, model_cfg, plugin_cfg, metadata: dict) -> Path:
    path = Path(path)
    atomic_save({
        "format": FORMAT, "version": VERSION, "metadata": dict(metadata),
        "model_config": OmegaConf.to_container(model_cfg, resolve=True),
        "plugin_config": OmegaConf.to_container(plugin_cfg, resolve=True),
        "normaliser": trained.normaliser.state(),
        "centroids": {k: np.asarray(v).tolist() for k, v in trained.centroids.items()},
        "weights": {k: v.detach().cpu() for k, v in trained.model.state_dict().items()},
    }, path)
    return path


def load_model(path: str | Path, device: str | torch.device = "cpu") -> TrainedEq:
    """Rebuild a `TrainedEq` from `save_model`'s file; one-line error for anything else. Weights-only: a
    model file from anyone opens without running code (`aaexp.core.files.load_safely`)."""
    blob = load_safely(path, f"an {FORMAT} file", "; ask its author for the eq_model.pt that `aaexp train` wrote")
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise AaexpError(f"{path}: not an {FORMAT} file")
    if blob.get("version") != VERSION:
        raise AaexpError(f"{path}: format version {blob.get('version')} (this aaexp reads {VERSION})")
    try:
        ranges = PluginRanges.from_cfg(OmegaConf.create(blob["plugin_config"]))
        model = eq_model.build(OmegaConf.create(blob["model_config"]), ranges)
        model.load_state_dict(blob["weights"])
        centroids = {k: np.asarray(v) for k, v in blob["centroids"].items()}
        norm = normalise.from_state(blob["normaliser"])
    except AaexpError as exc:
        raise AaexpError(f"{path}: {exc}") from exc
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, OmegaConfBaseException) as exc:
        raise AaexpError(f"{path}: an {FORMAT} file with missing or broken parts ({type(exc).__name__}: {exc})") from exc
    model.to(device).eval()
    return TrainedEq(model, norm, ranges, centroids)
