"""aaexp.aa.eval.oversample and `aaexp eval --oversample`: the teacher run at k·fs, checked against
independent computations (a Fourier series, the original model on polyphase components, a literal
state delay-line loop, the original model at fs) and end to end through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.signal import resample_poly

from aaexp.aa.eval.oversample import DelayLineLSTM, Oversampled, adapt, parse_factors
from aaexp.aa.models import DEMO_TEACHER, load_model
from aaexp.commands import cli
from aaexp.core.errors import AaexpError
from aaexp.tracking import store as tracking
from tests.aa.test_study import TanhTeacher  # tanh(g·x), memoryless, the AmpModel interface

FS = 44100
N = 4409          # the largest prime <= 0.1 s at 44.1 kHz


def tone(m: int, amp: float, n_samples: int) -> torch.Tensor:
    """amp·sin(2π m n / N): exactly N-periodic, f0 = m·FS/N. Tensor[1 x n_samples]."""
    n = np.arange(n_samples)
    return torch.from_numpy(amp * np.sin(2 * np.pi * ((m * n) % N) / N))[None]


def esr_db(y: np.ndarray, ref: np.ndarray) -> float:
    return float(10 * np.log10(np.sum((y - ref) ** 2) / np.sum(ref ** 2)))


def alias_ratio_db(y: np.ndarray, m: int) -> float:
    """Energy off the harmonic bins (multiples of m, DC included) over energy on them."""
    spec = np.abs(np.fft.rfft(y)) ** 2
    harmonic = np.arange(spec.size) % m == 0
    return float(10 * np.log10(spec[~harmonic].sum() / spec[harmonic].sum()))


def test_oversampled_tanh_against_its_fourier_series():
    """tanh(g·A·sin θ) ×4: harmonics below 0.9·fs/2 are the Fourier series', and what aliasing is left is
    exactly the harmonics that fold below fs/2 at 4·fs (both predicted from a 65,536-point FFT of one period)."""
    g, amp, k = 8.0, 0.5, 4
    m = round(5000 * N / FS)                 # f0 ≈ 5 kHz
    f0 = m * FS / N
    model = Oversampled(TanhTeacher(g), k)
    n_warm = 2000
    x = tone(m, amp, n_warm + 2 * N + model.lookahead)
    y = model(x)[0].detach().numpy()
    win = y[n_warm:n_warm + N]
    np.testing.assert_allclose(y[n_warm + N:n_warm + 2 * N], win, rtol=0, atol=1e-13)   # exactly N-periodic once settled
    plain = torch.tanh(g * x[0, n_warm:n_warm + N]).numpy()

    p = 1 << 16
    c = np.fft.rfft(np.tanh(g * amp * np.sin(2 * np.pi * np.arange(p) / p))) / p      # c_h: y = Σ c_h e^{ihθ} + c.c.
    h = np.arange(c.size)
    f = h * f0
    energy = lambda sel: float(np.sum(2 * np.abs(c[sel]) ** 2))          # noqa: E731
    kept = energy((h >= 1) & (f < FS / 2))
    folded_k = np.abs((f + k * FS / 2) % (k * FS) - k * FS / 2)        # where each harmonic lands at k·fs
    # at fs every harmonic above fs/2 aliases (the prediction method, checked on the plain model)
    assert alias_ratio_db(plain, m) == pytest.approx(10 * np.log10(energy(f > FS / 2) / kept), abs=0.01)
    # at k·fs, harmonics above k·fs/2 fold; those landing below 0.9·fs/2 pass the decimator, those in
    # 0.9-1.0·fs/2 pass partly (transition band), the rest are stopped (-120 dB)
    lo = 10 * np.log10(energy((f > k * FS / 2) & (folded_k < 0.9 * FS / 2)) / kept)
    hi = 10 * np.log10(energy((f > k * FS / 2) & (folded_k < FS / 2)) / kept)
    got = alias_ratio_db(win, m)
    assert lo - 0.1 < got < hi + 0.1
    assert alias_ratio_db(plain, m) - got > 85                         # -18 dB -> about -111 dB

    theta0 = 2 * np.pi * m * n_warm / N
    hs = np.arange(1, int(0.9 * FS / 2 / f0) + 1)
    ideal = N * c[hs] * np.exp(1j * hs * theta0)
    spec = np.fft.rfft(win)[hs * m]
    assert 10 * np.log10(np.sum(np.abs(spec - ideal) ** 2) / np.sum(np.abs(ideal) ** 2)) < -110


@pytest.mark.parametrize("k", [2, 3])
def test_adapted_wavenet_is_the_original_on_each_polyphase_component(k):
    """Dilations ×k at k·fs = the unchanged WaveNet run on samples r, r+k, r+2k, ... for each r."""
    teacher = load_model(DEMO_TEACHER)
    fast = adapt(teacher, k)
    assert fast.sample_rate == k * teacher.sample_rate
    assert fast.receptive_field == 1 + k * (teacher.receptive_field - 1)
    u = torch.randn(2, 900 * k, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.3
    with torch.no_grad():
        got = fast(u)
        want = torch.stack([teacher(u[:, r::k]) for r in range(k)], dim=-1).reshape(2, -1)
    assert float(want.abs().max()) > 0.05
    torch.testing.assert_close(got, want, rtol=0, atol=1e-13)


def test_delay_line_lstm_matches_a_literal_state_delay_loop(shared_data):
    """Carson et al. (DAFx24): h_n, c_n = cell(x_n, h_{n-k}, c_{n-k}); written out sample by sample."""
    teacher = load_model(shared_data / "nam" / "jhm8_lstm_teacher.json", default_sample_rate=FS)
    k, t = 3, 301
    core = teacher.core
    cell = torch.nn.LSTMCell(1, core.rec.hidden_size).double()
    cell.load_state_dict({"weight_ih": core.rec.weight_ih_l0, "weight_hh": core.rec.weight_hh_l0,
                          "bias_ih": core.rec.bias_ih_l0, "bias_hh": core.rec.bias_hh_l0})
    x = torch.randn(1, t, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 0.2
    zero = torch.zeros(1, core.rec.hidden_size, dtype=torch.float64)
    hs, cs, ys = [], [], []
    with torch.no_grad():
        for n in range(t):
            h, c = cell(x[:, n:n + 1], (hs[n - k], cs[n - k]) if n >= k else (zero, zero))   # Proteus starts from zeros
            hs.append(h)
            cs.append(c)
            ys.append(core.lin(h)[:, 0] + x[:, n])                                          # skip connection
        want = torch.stack(ys, dim=1)
        got = DelayLineLSTM(teacher, k)(x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def low_tone_comparison(model, k: int, n_warm: int) -> tuple[float, float]:
    """(ESR of the oversampled model against the model at fs, ESR of the *unadapted* model run at k·fs),
    dB, on a 100 Hz tone at -20 dBFS where nothing aliases."""
    over = Oversampled(model, k)
    x = tone(10, 0.1, n_warm + N + over.lookahead)                    # m = 10: f0 = 100.02 Hz
    with torch.no_grad():
        ref = model(x)[0, n_warm:n_warm + N].numpy()
        got = over(x)[0, n_warm:n_warm + N].numpy()
        up = torch.from_numpy(resample_poly(x.numpy(), k, 1, axis=-1))
        naive = resample_poly(model(up).numpy(), 1, k, axis=-1)[0, n_warm:n_warm + N]
    return esr_db(got, ref), esr_db(naive, ref)


@pytest.mark.parametrize("k", [2, 4])
def test_adapted_tcn_at_k_fs_matches_the_tcn_at_fs_on_a_low_tone(shared_data, k):
    """jhm8 TCN (receptive field 4,093): measured -146 dB (k=2) / -148 dB (k=4); the unadapted one is far off."""
    teacher = load_model(shared_data / "nam" / "jhm8_tcn_teacher.nam")
    adapted, naive = low_tone_comparison(teacher, k, n_warm=8192)
    assert adapted < -120
    assert naive > -30          # shows the check can fail: dilations at k·fs matter


@pytest.mark.slow
@pytest.mark.parametrize("k", [2, 4])
def test_delay_line_lstm_at_k_fs_matches_the_lstm_at_fs_on_a_low_tone(shared_data, k):
    """jhm8 Proteus LSTM: measured -146 dB (k=2) / -148 dB (k=4) after 0.5 s of warm-up."""
    teacher = load_model(shared_data / "nam" / "jhm8_lstm_teacher.json", default_sample_rate=FS)
    adapted, naive = low_tone_comparison(teacher, k, n_warm=FS // 2)
    assert adapted < -120
    assert naive > -30


def test_models_without_a_known_adaptation_are_refused():
    class Filter(torch.nn.Module):          # has memory, but no way to know its time constants
        architecture, receptive_field, sample_rate = "Toy", 64, FS

        def forward(self, x):
            return x

    with pytest.raises(AaexpError, match="cannot oversample a Toy model"):
        Oversampled(Filter(), 2)


@pytest.mark.parametrize("text, factors", [("2", [2]), ("2,4", [2, 4]), (" 4, 2,4", [4, 2])])
def test_parse_factors(text, factors):
    assert parse_factors(text) == factors


def one_line_error(capsys) -> str:
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("aaexp eval: error")]
    assert len(err) == 1
    return err[0]


@pytest.mark.parametrize("flags, needle", [
    (["--oversample", "0"], "factor 0 must be an integer from 2"),
    (["--oversample", "1"], "factor 1 must be an integer from 2"),
    (["--oversample", "x"], "'x' is not an integer factor"),
    (["--oversample", "2,"], "'' is not an integer factor"),
    (["--oversample", "2", "--no-teacher"], "--oversample needs --teacher"),
])
def test_bad_oversample_is_one_line_and_exit_2(tmp_path, capsys, flags, needle):
    teacher = [] if "--no-teacher" in flags else ["--teacher", str(DEMO_TEACHER)]
    flags = [f for f in flags if f != "--no-teacher"]
    argv = ["eval", *teacher, "--student", str(DEMO_TEACHER), *flags, "--no-log", "--no-plots", "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    assert needle in one_line_error(capsys)


SMALL = ["--n-tones", "4", "--eval-set", "window_s=0.1", "--eval-set", "warmup.min_s=0.05", "--no-plots"]


@pytest.mark.slow
def test_eval_oversample_adds_teacher_rows_that_alias_less(tmp_path, mlflow_uri, capsys):
    out = tmp_path / "r.json"
    rc = cli.main(["eval", "--teacher", str(DEMO_TEACHER), "--student", str(DEMO_TEACHER), "--oversample", "2",
                   "--json", str(out), "--out", str(tmp_path / "o"), *SMALL])
    assert rc == 0
    text = capsys.readouterr().out
    assert text.count("teacher ×2") >= 7                                      # 5 bands + "all" + the cost line
    assert "cost" in text and "the teacher's evaluation time" in text
    res = json.loads(out.read_text())
    rows = {(r["model"], r["band"]): r for r in res["rows"]}
    assert [r["model"] for r in res["rows"] if r["band"] == "all"] == ["teacher", "teacher ×2", "student"]
    aliasing = [b for (name, b), r in rows.items() if name == "teacher" and b != "all" and r["nmr_s_db"] is not None
                and r["nmr_s_db"] > -10]
    assert aliasing                                                             # the demo teacher aliases audibly somewhere
    for band in aliasing:
        assert rows[("teacher ×2", band)]["nmr_s_db"] < rows[("teacher", band)]["nmr_s_db"] - 5
    assert all(t["teacher ×2"]["periodicity_mismatch_db"] < -200 for t in res["tones"])   # exactly periodic at fs
    assert -120 <= rows[("teacher ×2", "all")]["hesr_r_db"] < -40               # close to the teacher's harmonics, not equal
    (cost,) = res["meta"]["oversample"]
    assert cost["factor"] == 2 and cost["cost_vs_teacher"] > 0 and cost["filter"]["taps"] == 315
    assert not res["warnings"]
    run = tracking.client().search_runs([tracking.client().get_experiment_by_name("aaexp-aa").experiment_id])[0]
    m = run.data.metrics
    for band in aliasing:
        assert m[f"eval/oversample_2/nmr_s/{band}"] == pytest.approx(rows[("teacher ×2", band)]["nmr_s_db"])
        assert m[f"eval/teacher/nmr_s/{band}"] == pytest.approx(rows[("teacher", band)]["nmr_s_db"])
    assert m["eval/oversample_2/hesr_r/all"] == pytest.approx(rows[("teacher ×2", "all")]["hesr_r_db"])
    assert m["eval/oversample_2/cost_vs_teacher"] == pytest.approx(cost["cost_vs_teacher"])
