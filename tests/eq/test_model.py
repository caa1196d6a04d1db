"""The autoencoder's decoders (V1 heads, V2 sigmoid) and the model file round trip."""

import numpy as np
import pytest
import torch

from aaexp.core.config import compose
from aaexp.core.errors import AaexpError
from aaexp.eq import model as eq_model
from aaexp.eq import normalise
from aaexp.eq.model_file import TrainedEq, load_model, save_model
from aaexp.eq.params import FREQ_IDX, GAIN_IDX, Q_IDX, PluginRanges


@pytest.fixture(scope="module")
def ranges():
    return PluginRanges.from_cfg(compose(["study=eq"]).data.plugin)


def test_v2_decoder_stays_in_unit_box(ranges):
    torch.manual_seed(0)
    cfg = compose(["+experiment=eq_v2"]).model
    m = eq_model.build(cfg, ranges).eval()
    out, z, e = m(torch.randn(64, 13) * 5)
    assert out.shape == (64, 13) and z.shape == (64, cfg.latent_dim) and e.shape == (64, cfg.embed_dim)
    assert (out >= 0).all() and (out <= 1).all() and (z.abs() < 1).all()
    # any latent at all decodes inside [0, 1]
    far = m.decoder(torch.randn(64, cfg.latent_dim) * 100)
    assert (far >= 0).all() and (far <= 1).all()


def test_v1_plugin_heads_emit_plugin_units_that_the_zscore_inverse_pushes_out_of_range(ranges):
    """The original V1 mechanism: heads inside the plugin ranges *before* the inverse z-score."""
    torch.manual_seed(0)
    cfg = compose(["+experiment=eq_v1"]).model
    m = eq_model.build(cfg, ranges).eval()
    with torch.no_grad():
        heads = m.decoder(torch.randn(32, cfg.latent_dim)).double().numpy()
    assert ranges.valid(heads).all()  # tanh x 12 dB, sigmoid into each band's range
    data = np.random.default_rng(0).uniform(*ranges.bounds(), size=(200, 13))
    z = normalise.ZScore.fit(data, 1e-8)
    decoded = z.inverse(torch.tensor(heads)).numpy()
    np.testing.assert_allclose(decoded, heads * data.std(0) + data.mean(0), rtol=1e-6)
    assert (decoded[:, FREQ_IDX[4]] > 20000).all()


def test_v1_normalised_heads_are_plain_linear(ranges):
    """head_units=normalised: each head's raw output lands in its parameters' columns, unsquashed."""
    torch.manual_seed(2)
    cfg = compose(["+experiment=eq_v1", "model.head_units=normalised"]).model
    dec = eq_model.build(cfg, ranges).eval().decoder
    with torch.no_grad():
        z = torch.randn(16, cfg.latent_dim) * 50
        h, out = dec.trunk(z), dec(z)
        for head, idx in ((dec.gain, GAIN_IDX), (dec.freq, FREQ_IDX), (dec.q, Q_IDX)):
            torch.testing.assert_close(out[:, idx], head(h))
    with pytest.raises(AaexpError):
        eq_model.build(compose(["+experiment=eq_v1", "model.head_units=hz"]).model, ranges)


@pytest.mark.parametrize("exp", ["eq_v1", "eq_v2"])
def test_model_file_round_trip(tmp_path, ranges, exp):
    torch.manual_seed(1)
    cfg = compose([f"+experiment={exp}"])
    data = np.random.default_rng(1).uniform(*ranges.bounds(), size=(50, 13))
    trained = TrainedEq(eq_model.build(cfg.model, ranges).eval(), normalise.build(cfg.model.norm, data), ranges,
                        {"warm": np.full(cfg.model.latent_dim, 0.1)})
    path = save_model(tmp_path / "m.pt", trained, cfg.model, cfg.data.plugin, {"note": "test"})
    torch.load(path, weights_only=True)   # torch's own weights-only loader opens what save_model writes
    again = load_model(path)
    np.testing.assert_array_equal(again.encode(data), trained.encode(data))
    z = np.random.default_rng(2).uniform(-1, 1, (5, cfg.model.latent_dim))
    np.testing.assert_array_equal(again.decode(z), trained.decode(z))
    np.testing.assert_array_equal(again.centroids["warm"], trained.centroids["warm"])
    torch.save({"format": "other"}, tmp_path / "x.pt")
    with pytest.raises(AaexpError, match="not an"):
        load_model(tmp_path / "x.pt")


@pytest.mark.parametrize("raw", [False, True], ids=["torch_save", "raw_pickle"])
def test_a_hostile_eq_model_file_is_refused_by_aaexp_eval_and_writes_nothing(tmp_path, raw):
    """The issue's reproduction: `aaexp eval --eq-model eq_model.pt --eq-words warm bright` on a file whose
    pickle writes a marker: one line naming the file, exit 2, the marker and every other file not written."""
    from tests.hostile import write_hostile
    from tests.spine.helpers import aaexp

    write_hostile(tmp_path / "eq_model.pt", tmp_path / "marker", {"format": "aaexp-eq-autoencoder", "version": 1},
                  raw_pickle=raw)
    r = aaexp("eval", "--eq-model", "eq_model.pt", "--eq-words", "warm", "bright", cwd=tmp_path,
              env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aaexp eval: error: eq_model.pt: refused to open an aaexp-eq-autoencoder"), r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eq_model.pt"]   # no marker, no store, no outputs


def test_an_eq_model_file_with_missing_parts_is_one_line(tmp_path):
    """The error seen in the issue ("error: 'plugin_config'") named no file and no cause."""
    torch.save({"format": "aaexp-eq-autoencoder", "version": 1, "model_config": {}}, tmp_path / "m.pt")
    with pytest.raises(AaexpError, match=r"m.pt: an aaexp-eq-autoencoder file with missing or broken parts \(KeyError"):
        load_model(tmp_path / "m.pt")


@pytest.mark.slow
def test_eval_cli_decodes_from_a_model_file(tmp_path, ranges, mlflow_uri):
    """`aaexp eval --eq-model`: tables, plot and JSON from the stored centroids; unknown words fail in one line."""
    import json

    from aaexp.commands.eval import build_parser
    from aaexp.eq import eval_cli
    from aaexp.tracking import store as tracking

    torch.manual_seed(3)
    cfg = compose(["+experiment=eq_v2"])
    rng = np.random.default_rng(3)
    cents = {"warm": rng.uniform(-1, 1, cfg.model.latent_dim), "bright": rng.uniform(-1, 1, cfg.model.latent_dim)}
    trained = TrainedEq(eq_model.build(cfg.model, ranges).eval(), normalise.build(cfg.model.norm, np.empty((0, 13))), ranges, cents)
    path = save_model(tmp_path / "eq_model.pt", trained, cfg.model, cfg.data.plugin, {})
    parser = build_parser([("eq", eval_cli)])
    args = parser.parse_args(["--eq-model", str(path), "--eq-alphas", "0", "0.5", "1", "--out", str(tmp_path / "out"),
                              "--json", str(tmp_path / "r.json")])
    assert eval_cli.claims(args) and eval_cli.run(args) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert [d["name"] for d in res["decoded"]] == ["warm", "bright"] and len(res["interpolation"]) == 3
    # the numbers are the model's own decoding of the stored centroids, and the midpoint that of the mean
    np.testing.assert_allclose(res["decoded"][0]["band5_freq_hz"], trained.decode(cents["warm"][None])[0, 12])
    mid = trained.decode(((cents["warm"] + cents["bright"]) / 2)[None])[0]
    np.testing.assert_allclose(res["interpolation"][1]["band1_gain_db"], mid[0])
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"eq_decoded.md", "eq_interpolation.md", "eq_responses.png"}
    run = tracking.client().search_runs([tracking.client().get_experiment_by_name("aaexp-eq").experiment_id])[0]
    assert run.data.metrics["eval/valid_share/decoded"] == np.mean([d["valid"] for d in res["decoded"]])
    bad = parser.parse_args(["--eq-model", str(path), "--eq-words", "crunchy", "--no-log"])
    with pytest.raises(AaexpError, match="crunchy"):
        eval_cli.run(bad)
