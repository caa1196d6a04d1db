"""The time-to-target levers: the confirmation grid, tones drawn by difficulty, the weight average, the screen."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aaexp.aa.eval import grid as eval_grid
from aaexp.aa.train.trainer import draw_order
from aaexp.core.config import compose
from tests.aa.test_study import TINY, finished_runs, history, train


def test_confirmation_grid_is_the_protocol_keys_plus_midpoints_and_never_a_stopping_tone():
    cfg = compose([]).eval
    g = eval_grid.confirm_grid(cfg, 44100)
    n_win = 44089                                                          # the largest prime <= 44100
    keys = 440.0 * 2.0 ** ((np.arange(21, 109) - 69) / 12.0)            # the 88 piano keys, written out
    std = np.geomspace(27.5, 12000.0, 50)                                 # the stopping grid's nominal f0s
    mids = np.sqrt(std[:-1] * std[1:])
    nominal = np.concatenate([keys, mids[mids > 4186.0]])
    m_std = set(np.round(std * n_win / 44100).astype(int).tolist())
    m = np.round(nominal * n_win / 44100).astype(int)
    keep = np.array([k not in m_std for k in m.tolist()])                # a key on a stopping tone's bin is left out
    assert sorted(g.m.tolist()) == sorted(m[keep].tolist())
    assert g.f0_nominal.numpy() == pytest.approx(np.sort(nominal[keep]), rel=1e-12)
    assert (g.level_dbfs == -20.0).all() and float(g.f0.max()) < 12000.0
    cents = np.abs(1200 * np.log2(g.f0.numpy() / g.f0_nominal.numpy()))
    assert cents.max() < 32.0                                             # the 1 Hz bins of the 1 s window


def test_difficulty_draws_follow_their_closed_form():
    d = [30.0, -5.0, -40.0, float("nan")]      # dB; the last tone not seen yet
    mix, floor = 0.6, -20.0
    w = np.array([50.0, 15.0, 0.0, 50.0])       # dB above the floor; unseen weighs as the hardest
    p = (1 - mix) / 4 + mix * w / w.sum()
    gen = torch.Generator().manual_seed(0)
    draws = torch.cat([draw_order(4, d, "difficulty", mix, floor, gen) for _ in range(5000)]).numpy()
    freq = np.bincount(draws, minlength=4) / len(draws)
    sigma = np.sqrt(p * (1 - p) / len(draws))
    assert np.all(np.abs(freq - p) < 4 * sigma)


def test_uniform_and_unmeasured_draws_are_permutations():
    gen = torch.Generator().manual_seed(0)
    for kind, d in (("uniform", [30.0, 1.0, 2.0]), ("difficulty", [float("nan")] * 3), ("difficulty", [-50.0] * 3)):
        assert sorted(draw_order(3, d, kind, 0.5, -20.0, gen).tolist()) == [0, 1, 2]


@pytest.mark.slow
def test_the_exported_student_is_the_moving_average_of_the_weights(tmp_path, mlflow_uri, monkeypatch):
    """e_1 = w_1, e_k = d·e_(k-1) + (1 − d)·w_k over the weights after each update, computed here."""
    from aaexp.aa.models import load_model

    snapshots = []
    step = torch.optim.Adam.step

    def recording_step(self, *a, **k):
        out = step(self, *a, **k)
        snapshots.append([p.detach().clone().double() for g in self.param_groups for p in g["params"]])
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    decay = 0.7
    assert train(tmp_path, *TINY, f"trainer.ema_decay={decay}", "trainer.lr=1e-3", "eval.audio_check.enabled=false") == 0
    assert len(snapshots) == 4                   # 2 epochs × 2 batches
    ema = snapshots[0]
    for w in snapshots[1:]:
        ema = [decay * e + (1 - decay) * x for e, x in zip(ema, w)]
    last = load_model(next((tmp_path / "run" / "students").glob("student_last.*")))
    got = [p.detach().double() for p in last.parameters()]
    for e, g, w in zip(ema, got, snapshots[-1]):
        assert torch.allclose(g, e, rtol=1e-5, atol=1e-7)
    assert any(not torch.allclose(e, w, rtol=1e-5, atol=1e-7) for e, w in zip(ema, snapshots[-1]))   # not the last iterate


@pytest.mark.slow
def test_a_screen_that_fails_skips_the_full_grid_and_a_confirmed_pass_counts(tmp_path, mlflow_uri):
    watch = ["trainer.eval_every_n=1", "eval.screen.enabled=true", "eval.confirm.enabled=true", "eval.screen.window_s=0.1",
             "eval.audio_check.enabled=false", "eval.confirm.midi_min=100", "eval.confirm.midi_max=101"]
    # margin far below anything reachable: every scoring stops at the screen
    assert train(tmp_path, *TINY, *watch, "eval.screen.margin_db=-1000", run="a") == 0
    cl, (a,) = finished_runs(mlflow_uri)
    assert len(history(cl, a.info.run_id, "screen/excess_db")) == 5   # the untrained copy, then 4 updates
    assert cl.get_metric_history(a.info.run_id, "eval/pass") == []      # the full grid never ran in training
    # thresholds any student meets: screen, full grid and confirmation all pass at once (the untrained copy)
    assert train(tmp_path, *TINY, *watch, "eval.thresholds.nmr_s_db=200", "eval.thresholds.hesr_r_db=200",
                 "trainer.stop_at_target=true", run="b") == 0
    cl, (_, b) = finished_runs(mlflow_uri)
    m = b.data.metrics
    assert m["perf/updates_to_target"] == 0 and m["confirm/pass"] == 1 and m["perf/confirm_failures"] == 0
    assert "target/confirm/nmr_s/2k-8k" in m and 0 < m["perf/scoring_share"] < 1
