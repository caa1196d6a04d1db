"""Vocoders: a small random BigVGAN through our loader, Griffin-Lim against librosa's."""

import json

import librosa
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from aaexp.core.config import compose
from aaexp.core.errors import AaexpError
from aaexp.tnca import contract as ct
from aaexp.tnca.vocoders import BigVGANVocoder, GriffinLimVocoder, build_vocoder, griffin_lim


@pytest.fixture(scope="module")
def model_cfg():
    return OmegaConf.to_container(compose(["study=tnca"]).model, resolve=True)


def small_bigvgan_h(**over):
    """A tiny BigVGAN (256× upsampling like bigvgan_v2_22khz_80band_256x) with that model's mel settings."""
    h = {"num_mels": 80, "upsample_initial_channel": 32, "resblock": "1", "upsample_rates": [8, 8, 4],
         "upsample_kernel_sizes": [16, 16, 8], "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3, 5]],
         "activation": "snakebeta", "snake_logscale": True, "use_bias_at_final": False, "use_tanh_at_final": False,
         "sampling_rate": 22050, "n_fft": 1024, "hop_size": 256, "win_size": 1024, "fmin": 0, "fmax": None}
    return {**h, **over}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import bigvgan

    torch.manual_seed(0)
    gen = bigvgan.BigVGAN(bigvgan.env.AttrDict(small_bigvgan_h()))
    d = tmp_path_factory.mktemp("bigvgan_ckpt")
    (d / "config.json").write_text(json.dumps(small_bigvgan_h()))
    torch.save({"generator": gen.state_dict()}, d / "bigvgan_generator.pt")
    return d, gen


def test_random_bigvgan_through_our_loader_shapes_and_mel(model_cfg, checkpoint, shared_data):
    from bigvgan.meldataset import mel_spectrogram

    d, gen = checkpoint
    c = ct.contract_from_config(model_cfg, "bigvgan_v2_22khz_80band_256x")
    voc = BigVGANVocoder.from_checkpoint(d, c)
    y, _ = librosa.load(shared_data / "tnca" / "violin.wav", sr=22050, mono=True)
    x = torch.from_numpy(y[4096 : 4096 + 12 * 256].copy())[None]
    mel = ct.analyse(x, c)
    # Our mel is the package's own mel function on the same audio ...
    torch.testing.assert_close(mel, mel_spectrogram(x, 1024, 80, 22050, 256, 1024, 0, None), atol=1e-5, rtol=0)
    with torch.no_grad():
        audio = voc.mel_to_audio(mel)
        direct = gen.eval()(mel).squeeze(1)
    # ... and the vocoder returns hop samples per frame, the same as the generator called directly.
    assert mel.shape == (1, 80, 12) and audio.shape == (1, 12 * 256)
    torch.testing.assert_close(audio, direct)
    assert not any(p.requires_grad for p in voc.parameters())


def test_gradients_reach_the_mel_through_bigvgan(model_cfg, checkpoint):
    c = ct.contract_from_config(model_cfg, "bigvgan_v2_22khz_80band_256x")
    voc = BigVGANVocoder.from_checkpoint(checkpoint[0], c)
    mel = torch.full((1, 80, 4), -5.0, requires_grad=True)
    voc.mel_to_audio(mel).pow(2).mean().backward()
    assert mel.grad is not None and mel.grad.abs().sum() > 0


def test_missing_or_mismatched_checkpoint_is_a_one_line_error(model_cfg, checkpoint, tmp_path):
    c = ct.contract_from_config(model_cfg, "bigvgan_v2_22khz_80band_256x")
    vcfg = dict(model_cfg["vocoder"], name="bigvgan", checkpoint_dir=str(tmp_path / "nowhere"))
    with pytest.raises(AaexpError, match="config.json and bigvgan_generator.pt") as e:
        build_vocoder(vcfg, c, 0)
    assert "\n" not in str(e.value)
    with pytest.raises(AaexpError, match="not set"):
        build_vocoder(dict(vcfg, checkpoint_dir=None), c, 0)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text(json.dumps(small_bigvgan_h(fmax=8000)))
    (tmp_path / "bad" / "bigvgan_generator.pt").write_bytes((checkpoint[0] / "bigvgan_generator.pt").read_bytes())
    with pytest.raises(AaexpError, match="fmax"):
        BigVGANVocoder.from_checkpoint(tmp_path / "bad", c)
    with pytest.raises(AaexpError, match="not a BigVGAN contract"):
        BigVGANVocoder.from_checkpoint(checkpoint[0], ct.contract_from_config(model_cfg, "notebook_db"))


def spectral_convergence(y, mag, n_fft=1024, hop=256):
    s = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop))[:, : mag.shape[1]]
    return np.linalg.norm(s - mag[:, : s.shape[1]]) / np.linalg.norm(mag[:, : s.shape[1]])


def test_griffin_lim_converges_like_librosa(model_cfg, shared_data):
    y, _ = librosa.load(shared_data / "tnca" / "violin.wav", sr=22050, mono=True)
    y = y[4096 : 4096 + 32 * 256]
    mag = np.abs(librosa.stft(y, n_fft=1024, hop_length=256))  # centred, zero-padded: notebook framing
    c = ct.contract_from_config(model_cfg, "notebook_db")
    ours = griffin_lim(torch.from_numpy(mag)[None], c, n_iter=16, length=len(y))[0].numpy()
    ref = librosa.griffinlim(mag, n_iter=16, hop_length=256, n_fft=1024, length=len(y), random_state=0)
    sc_ours, sc_ref = spectral_convergence(ours, mag), spectral_convergence(ref, mag)
    assert sc_ours < 1.25 * sc_ref and sc_ours < 0.4
    again = griffin_lim(torch.from_numpy(mag)[None], c, n_iter=16, length=len(y))[0].numpy()
    np.testing.assert_array_equal(ours, again)  # seeded: the same audio every time


def test_mel_vocoding_round_trip_recovers_the_level(model_cfg, shared_data):
    y, _ = librosa.load(shared_data / "tnca" / "violin.wav", sr=22050, mono=True)
    x = torch.from_numpy(y[4096 : 4096 + 32 * 256].copy())[None]
    for name in ["notebook_db", "bigvgan_v2_22khz_80band_256x"]:
        c = ct.contract_from_config(model_cfg, name)
        raw = ct.mel_spectrogram(x, c)
        ref = float(raw.max())
        audio = GriffinLimVocoder(c, n_iter=16).mel_to_audio(ct.compress(raw, c, ref), ref)[0].numpy()
        rms_in, rms_out = float(np.sqrt(np.mean(x.numpy() ** 2))), float(np.sqrt(np.mean(audio**2)))
        assert audio.shape[-1] == c.num_samples(raw.shape[-1])
        assert abs(20 * np.log10(rms_out / rms_in)) < 1.5  # within 1.5 dB of the input level
