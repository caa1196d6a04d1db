"""Audio measures: the original diagnosis numbers, and each distance against a separate NumPy version."""

import json
import math

import numpy as np
import pytest
from omegaconf import OmegaConf

from aaexp.core.config import CONF_DIR
from aaexp.tnca import measures
from aaexp.tnca.audio_io import load_audio


@pytest.fixture(scope="module")
def cfg():
    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / "eval" / "tnca.yaml"), resolve=True)


def centroid_by_hand(x: np.ndarray, sr: int, n_fft=2048, hop=512) -> float:
    """Mean spectral centroid, written out: centred frames (zero padding), periodic Hann, |X|-weighted."""
    xp = np.pad(x, n_fft // 2)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    cents = []
    for start in range(0, len(xp) - n_fft + 1, hop):
        mag = np.abs(np.fft.rfft(xp[start : start + n_fft] * win))
        cents.append(np.sum(freqs * mag) / max(np.sum(mag), 1e-300))
    return float(np.mean(cents))


def test_reproduces_the_original_diagnosis(shared_data, cfg):
    violin, vsr = load_audio(shared_data / "tnca" / "violin.wav", mono=False)
    gen, gsr = load_audio(shared_data / "tnca" / "generated_bigvgan-2.wav", mono=False)
    v, g = measures.describe(violin, vsr, cfg), measures.describe(gen, gsr, cfg)
    # DIAGNOSIS.md: violin RMS 0.1018, centroid 1161 Hz, [-0.9999, 0.7132], 0.949 s;
    # generated RMS 0.4202, centroid 2025 Hz, [-0.8897, 0.9536], 1.033 s.
    assert round(v["rms"], 4) == 0.1018 and round(g["rms"], 4) == 0.4202
    assert abs(v["centroid_hz"] - 1161) < 1 and abs(g["centroid_hz"] - 2025) < 1
    assert (round(v["peak_min"], 4), round(v["peak_max"], 4)) == (-0.9999, 0.7132)
    assert (round(g["peak_min"], 4), round(g["peak_max"], 4)) == (-0.8897, 0.9536)
    assert round(v["duration_s"], 3) == 0.949 and round(g["duration_s"], 3) == 1.033
    # ... computed on the mono mix at the file's own rate, librosa's defaults: checked by hand.
    mono = violin.mean(axis=0)
    assert v["rms"] == pytest.approx(math.sqrt(np.mean(mono**2)), rel=1e-12)
    assert v["centroid_hz"] == pytest.approx(centroid_by_hand(mono, vsr), rel=1e-6)
    assert g["centroid_hz"] == pytest.approx(centroid_by_hand(gen[0], gsr), rel=1e-6)


def test_centroid_at_the_resampled_rate_would_not_match(shared_data, cfg):
    # Why the README says "at the file's own rate": at 22,050 Hz the violin's centroid is ~1055 Hz.
    v22, sr = load_audio(shared_data / "tnca" / "violin.wav", 22050)
    assert abs(measures.describe(v22, sr, cfg)["centroid_hz"] - 1161) > 80


def lsd_by_hand(x, y, n_fft=2048, hop=512, eps=1e-10):
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    xp, yp = np.pad(x, n_fft // 2), np.pad(y, n_fft // 2)
    out = []
    for s in range(0, len(xp) - n_fft + 1, hop):
        px = np.abs(np.fft.rfft(xp[s : s + n_fft] * win)) ** 2
        py = np.abs(np.fft.rfft(yp[s : s + n_fft] * win)) ** 2
        out.append(np.sqrt(np.mean((10 * np.log10(px + eps) - 10 * np.log10(py + eps)) ** 2)))
    return float(np.mean(out))


def test_distances_against_hand_computations(cfg):
    rng = np.random.default_rng(0)
    sr = 16000
    t = np.arange(sr) / sr
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.normal(size=sr)
    y = 0.2 * np.sin(2 * np.pi * 660 * t) + 0.02 * rng.normal(size=sr)
    d = measures.compare(x, sr, y, sr, cfg)
    assert d["lsd_db"] == pytest.approx(lsd_by_hand(x, y), rel=1e-6)
    # A pure gain changes every log-spectral value by 20·log10(g) and only the level cepstrum c0.
    half = measures.compare(0.5 * x, sr, x, sr, cfg)
    assert half["lsd_db"] == pytest.approx(20 * math.log10(2), rel=1e-4)
    assert half["mcd_db"] == pytest.approx(0.0, abs=1e-6)
    same = measures.compare(x, sr, x, sr, cfg)
    assert same["lsd_db"] == 0 and same["mcd_db"] == 0 and same["mrstft"] == pytest.approx(0, abs=1e-6)
    assert d["mcd_db"] > 1 and d["mrstft"] > 0.1


def test_mcd_against_a_dct_written_out(cfg):
    import librosa
    from scipy.fft import dct

    rng = np.random.default_rng(1)
    sr = 16000
    x, y = rng.normal(size=sr) * 0.1, rng.normal(size=sr) * np.linspace(0, 0.3, sr)
    m = cfg["compare"]["mcd"]
    cep = []
    for s in (x, y):
        mel = librosa.feature.melspectrogram(y=s, sr=sr, n_fft=m["n_fft"], hop_length=m["hop_length"], n_mels=m["n_mels"])
        cep.append(dct(0.5 * np.log(mel + m["eps"]), type=2, norm="ortho", axis=0)[1 : m["n_mfcc"]])
    frames = [10 / math.log(10) * math.sqrt(2 * sum((cep[0][d, t] - cep[1][d, t]) ** 2 for d in range(cep[0].shape[0])))
              for t in range(cep[0].shape[1])]
    assert measures.compare(x, sr, y, sr, cfg)["mcd_db"] == pytest.approx(np.mean(frames), rel=1e-9)


def test_pairwise_resamples_the_reference_and_trims(shared_data, cfg):
    gen, gsr = load_audio(shared_data / "tnca" / "generated_bigvgan-2.wav", mono=False)
    violin, vsr = load_audio(shared_data / "tnca" / "violin.wav", mono=False)
    d = measures.compare(gen, gsr, violin, vsr, cfg)
    assert d["compare_rate"] == 22050 and d["compared_s"] == pytest.approx(41865 / 44100, abs=1e-4)


def test_edge_energy_closed_form():
    import torch

    tgt = torch.ones(4, 20)
    gen = torch.ones(4, 20)
    gen[:, :2] = 10.0  # first two frames ten times the energy
    e = measures.edge_energy(gen, tgt, frames=2)
    assert e["edge_left_db"] == pytest.approx(10.0)
    assert e["edge_right_db"] == pytest.approx(0.0)
    assert e["edge_db"] == pytest.approx(10 * math.log10((10 + 1) / 2))
    e2 = measures.edge_energy(3 * gen, tgt, frames=2)  # a global gain is not an edge artifact
    assert e2["edge_vs_interior_db"] == pytest.approx(e["edge_vs_interior_db"])


def test_eval_cli_prints_writes_json_and_logs(shared_data, mlflow_uri, tmp_path, capsys):
    from aaexp.commands.cli import main
    from aaexp.tracking.store import client

    out = tmp_path / "res.json"
    rc = main(["eval", "--audio", str(shared_data / "tnca" / "generated_bigvgan-2.wav"),
               "--reference", str(shared_data / "tnca" / "violin.wav"), "--json", str(out), "--out", str(tmp_path / "o")])
    assert rc == 0
    res = json.loads(out.read_text())
    assert round(res["audio/rms"], 4) == 0.4202 and round(res["reference/rms"], 4) == 0.1018
    assert "| audio/centroid_hz | 2025.44 |" in capsys.readouterr().out
    cl = client(mlflow_uri)
    run = cl.search_runs([cl.get_experiment_by_name("aaexp-tnca").experiment_id])[0]
    assert run.data.metrics["reference/centroid_hz"] == pytest.approx(res["reference/centroid_hz"])
    assert {a.path for a in cl.list_artifacts(run.info.run_id, "eval")} == {"eval/tnca_measures.md", "eval/tnca_spectrograms.png"}


def test_eval_cli_missing_file_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    from aaexp.commands.cli import main

    # cli.main sets HYDRA_FULL_ERROR=1 for Hydra, which it also reads as --debug on a later call.
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    assert main(["eval", "--audio", str(tmp_path / "none.wav"), "--no-log"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("aaexp eval: error: --audio=") and "\n" not in err
