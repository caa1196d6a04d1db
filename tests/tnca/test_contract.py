"""Vocoder contracts: our mel equals librosa's / BigVGAN's own, round trips, and the notebook's error."""

import librosa
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from aaexp.core.config import compose
from aaexp.core.errors import AaexpError
from aaexp.tnca import contract as ct
from aaexp.tnca.audio_io import load_audio, pad_to_frame_multiple


@pytest.fixture(scope="module")
def model_cfg():
    return OmegaConf.to_container(compose(["study=tnca"]).model, resolve=True)


@pytest.fixture(scope="module")
def violin(shared_data):
    """The notebook's input: librosa.load(sr=22050, mono=True), zero-padded to a multiple of 8 frames."""
    y, _ = librosa.load(shared_data / "tnca" / "violin.wav", sr=22050, mono=True)
    n_frames = len(y) / 256
    target = int(np.ceil(n_frames / 8.0)) * 8 * 256
    return np.pad(y, (0, target - len(y))).astype(np.float32)


def test_our_loader_and_padding_reproduce_the_notebook_input(shared_data, violin):
    ours, sr = load_audio(shared_data / "tnca" / "violin.wav", 22050)
    ours = pad_to_frame_multiple(ours, 256, 8)
    assert sr == 22050 and len(ours) == len(violin) == 88 * 256
    np.testing.assert_allclose(ours, violin, atol=1e-6)


def test_notebook_contract_equals_librosa_power_to_db(model_cfg, violin):
    c = ct.contract_from_config(model_cfg, "notebook_db")
    ours = ct.analyse(torch.from_numpy(violin)[None], c)[0].numpy()
    mel = librosa.feature.melspectrogram(y=violin, sr=22050, n_fft=1024, hop_length=256, n_mels=80)
    expected = librosa.power_to_db(mel, ref=np.max)
    assert ours.shape == expected.shape == (80, 89)
    np.testing.assert_allclose(ours, expected, atol=2e-3)


def test_bigvgan_contract_equals_the_package_mel_function(model_cfg, violin):
    from bigvgan.meldataset import mel_spectrogram

    c = ct.contract_from_config(model_cfg, "bigvgan_v2_22khz_80band_256x")
    x = torch.from_numpy(violin)[None]
    expected = mel_spectrogram(x, 1024, 80, 22050, 256, 1024, 0, None)
    ours = ct.analyse(x, c)
    assert ours.shape == expected.shape == (1, 80, 88)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
    base = ct.contract_from_config(model_cfg, "bigvgan_base_22khz_80band")
    torch.testing.assert_close(ct.analyse(x, base), mel_spectrogram(x, 1024, 80, 22050, 256, 1024, 0, 8000), atol=1e-5, rtol=0)


def test_notebook_frames_explain_the_generated_file_length(model_cfg, violin, shared_data):
    # 89 centred frames; BigVGAN returns hop samples per frame: 89·256 = 22,784, the file's length.
    c = ct.contract_from_config(model_cfg, "notebook_db")
    frames = c.num_frames(len(violin))
    generated, sr = load_audio(shared_data / "tnca" / "generated_bigvgan-2.wav")
    assert frames == 89 and frames * 256 == len(generated) == 22784


def test_notebook_conversions_are_wrong_for_bigvgan_and_by_how_much(model_cfg, violin):
    """BigVGAN wants ln(mel magnitude) (about -11.5..0.5 nats here); the notebook fed 10^(dB/20)
    (its first version) or 10^(dB/10) (the 'fix') of a ref=max dB mel, both in (0, 1]."""
    from bigvgan.meldataset import mel_spectrogram

    truth = mel_spectrogram(torch.from_numpy(violin)[None], 1024, 80, 22050, 256, 1024, 0, None)[0].numpy()
    mel = librosa.feature.melspectrogram(y=violin, sr=22050, n_fft=1024, hop_length=256, n_mels=80)
    db = librosa.power_to_db(mel, ref=np.max)[:, : truth.shape[1]]
    err20 = np.abs(10 ** (db / 20) - truth).mean()
    err10 = np.abs(10 ** (db / 10) - truth).mean()
    # Measured: 8.09 and 8.07 nats mean absolute error (~70 dB); a correct input is exact (test above).
    assert 7.5 < err20 < 8.5 and 7.5 < err10 < 8.5
    assert ct.nats_to_db(err20) > 65
    # BigVGAN reads its input as ln|mel|: both give mel magnitudes in (1, e], a flat, loud spectrum.
    assert (10 ** (db / 20)).min() > 0 and (10 ** (db / 10)).max() <= 1.0 and np.median(truth) < -9
    # Even logged, the dB mel misses by ~1 nat: ref=max, mel of power not magnitude, other framing.
    err_log = np.abs(np.log(np.maximum(10 ** (db / 20), 1e-5)) - truth).mean()
    assert 0.8 < err_log < 1.3


@pytest.mark.parametrize("name", ["notebook_db", "bigvgan_v2_22khz_80band_256x"])
def test_stft_inverse_round_trip(model_cfg, violin, name):
    c = ct.contract_from_config(model_cfg, name)
    x = torch.from_numpy(violin[:8192]).double()[None]
    y = ct.istft(ct.stft(x, c), c, x.shape[-1])
    torch.testing.assert_close(y, x, atol=1e-9, rtol=0)
    assert c.num_samples(c.num_frames(len(violin))) == len(violin)


def test_compress_decompress_round_trip_closed_form(model_cfg):
    rng = np.random.default_rng(0)
    mel = torch.from_numpy(rng.uniform(1e-4, 10.0, size=(2, 80, 7)))
    ln = ct.contract_from_config(model_cfg, "bigvgan_v2_22khz_80band_256x")
    np.testing.assert_allclose(ct.compress(mel, ln).numpy(), np.log(mel.numpy()), rtol=1e-12)
    torch.testing.assert_close(ct.decompress(ct.compress(mel, ln), ln), mel)
    db = ct.contract_from_config(model_cfg, "notebook_db")
    ref = float(mel[0].max())
    out = ct.compress(mel[:1], db, ref)
    np.testing.assert_allclose(out.numpy(), librosa.power_to_db(mel[:1].numpy(), ref=ref), atol=1e-9)
    torch.testing.assert_close(ct.decompress(out, db, ref), mel[:1])


def test_mel_to_linear_is_a_nonnegative_least_squares_solution(model_cfg, violin):
    from scipy.optimize import nnls

    c = ct.contract_from_config(model_cfg, "bigvgan_v2_22khz_80band_256x")
    x = torch.from_numpy(violin)[None]
    mel = ct.mel_spectrogram(x, c)[..., 20:24].double()
    est = ct.mel_to_linear(mel, c, iters=300)
    assert est.min() >= 0
    basis = ct.mel_basis(c).double().numpy()
    for t in range(mel.shape[-1]):
        _, best = nnls(basis, mel[0, :, t].numpy())  # the exact NNLS residual, independently
        ours = np.linalg.norm(basis @ est[0, :, t].numpy() - mel[0, :, t].numpy())
        assert ours <= best + 0.02 * np.linalg.norm(mel[0, :, t].numpy())


def test_contract_config_is_strict(model_cfg):
    good = dict(model_cfg["contracts"]["notebook_db"])
    with pytest.raises(AaexpError, match="unknown keys"):
        ct.VocoderContract.from_config("x", {**good, "hop": 256})
    with pytest.raises(AaexpError, match="missing keys"):
        ct.VocoderContract.from_config("x", {k: v for k, v in good.items() if k != "fmax"})
    with pytest.raises(AaexpError, match="unknown vocoder contract"):
        ct.contract_from_config(model_cfg, "hifigan_nope")
