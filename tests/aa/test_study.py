"""Tone data, target cache, framing, and end-to-end training runs of the anti-aliasing study."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from omegaconf import OmegaConf

from aaexp.aa import data as tone_data
from aaexp.aa.framing import Framing
from aaexp.config import compose
from aaexp.errors import AaexpError

FS = 44100.0


class TanhTeacher(torch.nn.Module):
    """A memoryless clipper with the AmpModel interface: y = tanh(g·x) (aliases hard, no state)."""

    architecture = "WaveNet"
    receptive_field = 1
    sample_rate = FS

    def __init__(self, gain: float = 8.0):
        super().__init__()
        self.gain = gain
        self.w = torch.nn.Parameter(torch.ones((), dtype=torch.float64))

    def forward(self, x):
        return torch.tanh(self.gain * self.w * x)


def plain(cfg):
    return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))


@pytest.fixture
def data_cfg(tmp_path):
    cfg = plain(compose(["trainer=quick"]).data)
    cfg.n_train, cfg.n_val, cfg.tone_seconds, cfg.window_seconds = 10, 4, 0.06, 0.05
    cfg.cache_dir = str(tmp_path / "cache")
    return cfg


def numpy_bandlimited_tanh(f0, amp, phase, n_warmup, n, gain=8.0):
    """Independent: the tone, tanh, keep the rfft bins that are multiples of the f0 bin."""
    t = np.arange(n_warmup + n) / FS
    y = np.tanh(gain * amp * np.sin(2 * np.pi * f0 * t + phase))[n_warmup:]
    m = int(round(f0 * n / FS))
    spec = np.fft.rfft(y)
    keep = np.arange(len(spec)) % m == 0
    return np.fft.irfft(spec * keep, n=n)


def test_targets_are_the_bandlimited_teacher_output(tmp_path, data_cfg):
    teacher_file = tmp_path / "t.nam"
    teacher_file.write_text("stand-in teacher file")
    train, val, path, hit = tone_data.load_or_build(TanhTeacher(), teacher_file, data_cfg, "float64", "cpu")
    assert not hit and path.is_file()
    n = train.n_window
    assert n == 2203 and train.n_warmup == round(0.06 * FS) - n  # largest prime ≤ 2205
    idx = torch.tensor([7, 0, 3])
    got = train.targets(idx).numpy()
    for row, i in enumerate(idx.tolist()):
        ref = numpy_bandlimited_tanh(float(train.f0[i]), float(train.amp[i]), float(train.phase[i]), train.n_warmup, n)
        np.testing.assert_allclose(got[row], ref, atol=1e-12)
        assert float(train.f0[i]) * n / FS == pytest.approx(int(train.m[i]), abs=1e-9)  # exactly periodic
    # validation: MIDI 21..108 evenly, −20 dBFS, zero phase
    wanted = 440.0 * 2 ** ((np.linspace(21, 108, 4) - 69) / 12)
    assert np.all(np.abs(val.f0.numpy() - wanted) <= FS / n / 2 + 1e-9)  # snapped by at most half a bin
    np.testing.assert_allclose(val.amp.numpy(), 0.1)
    np.testing.assert_allclose(val.phase.numpy(), 0.0)
    # second call: served from the cache, identical
    train2, _, path2, hit2 = tone_data.load_or_build(TanhTeacher(), teacher_file, data_cfg, "float64", "cpu")
    assert hit2 and path2 == path and torch.equal(train2.targets(idx), train.targets(idx))
    assert len(list(path.parent.glob("*.pt"))) == 1
    # a different data setting or teacher file is a different entry
    data_cfg.val_db = -30.0
    assert tone_data.cache_key(teacher_file, data_cfg, FS, "float64") != path.stem.split("-")[1]


def test_level_and_f0_sampling(data_cfg):
    gen = torch.Generator().manual_seed(0)
    data_cfg.level_sampling = "linear"
    f0, amp, phase = tone_data.draw_train_tones(data_cfg, 4000, gen)
    # linear: gain uniform on [0, 10^(0/20)] (the reference); MIDI uniform on [21, 127]
    assert scipy.stats.kstest(amp.numpy(), "uniform", args=(0, 1)).pvalue > 1e-3
    midi = 69 + 12 * np.log2(f0.numpy() / 440)
    assert scipy.stats.kstest(midi, "uniform", args=(21, 106)).pvalue > 1e-3
    assert scipy.stats.kstest(phase.numpy(), "uniform", args=(0, 2 * np.pi)).pvalue > 1e-3
    data_cfg.level_sampling = "db"
    _, amp_db, _ = tone_data.draw_train_tones(data_cfg, 4000, gen)
    assert scipy.stats.kstest(20 * np.log10(amp_db.numpy()), "uniform", args=(-60, 60)).pvalue > 1e-3
    data_cfg.linear_f0_sample, data_cfg.f0_min, data_cfg.f0_max = True, 27.5, 18000.0
    f0_lin, _, _ = tone_data.draw_train_tones(data_cfg, 4000, gen)
    assert scipy.stats.kstest(f0_lin.numpy(), "uniform", args=(27.5, 18000 - 27.5)).pvalue > 1e-3
    data_cfg.level_sampling = "loud"
    with pytest.raises(AaexpError, match="level_sampling"):
        tone_data.draw_train_tones(data_cfg, 3, gen)


def test_wavenet_framing_is_the_steady_state_of_a_full_run(shared_data):
    """Only the receptive field before each frame is computed, yet the output equals a full-length run."""
    from aaexp.aa.models import load_model

    model = load_model(shared_data / "nam" / "jhm8_tcn_teacher.nam")
    n_warmup, n_window, history = model.receptive_field + 300, 3001, 54
    fr = Framing.build(model, n_warmup, n_window, history, tbptt=1000)
    assert fr.frames == ((0, 1000), (1000, 2001), (2001, 3001))  # ≈ tbptt each, tiling the window
    x = 0.3 * torch.sin(torch.arange(n_warmup + n_window, dtype=torch.float64) * 0.05).repeat(2, 1)
    with torch.no_grad():
        full = model(x)
        frames = list(fr.student_frames(model, x[:, fr.input_start:]))
    for (s, e), y in zip(fr.frames, frames):
        torch.testing.assert_close(y, full[:, n_warmup + s - history: n_warmup + e], rtol=0, atol=1e-13)
    with pytest.raises(AaexpError, match="warm-up"):
        Framing.build(model, model.receptive_field, n_window, history, None)


def test_lstm_framing_runs_the_warm_up_then_frames_in_order(shared_data):
    from aaexp.aa.models import load_model

    model = load_model(shared_data / "nam" / "jhm8_lstm_teacher.json", default_sample_rate=FS)
    fr = Framing.build(model, 500, 1200, 20, tbptt=400)
    x = 0.2 * torch.sin(torch.arange(1700, dtype=torch.float64) * 0.03).repeat(2, 1)
    with torch.no_grad():
        full = model(x)
        frames = list(fr.student_frames(model, x))
    got = torch.cat([frames[0]] + [f[:, fr.history:] for f in frames[1:]], dim=-1)
    torch.testing.assert_close(got, full[:, 500 - 20:], rtol=0, atol=1e-12)
    t = torch.arange(1200, dtype=torch.float64).repeat(2, 1)
    tf = fr.target_frames(t)
    assert torch.equal(tf[0][:, :20], t[:, -20:]) and torch.equal(tf[1], t[:, 400 - 20: 800])
