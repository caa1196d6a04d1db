"""The autoencoder's decoders (V1 heads, V2 sigmoid) and the model file round trip."""

import numpy as np
import pytest
import torch

from aaexp.config import compose
from aaexp.eq import model as eq_model
from aaexp.eq import normalise
from aaexp.eq.model_file import TrainedEq, load_model, save_model
from aaexp.eq.params import FREQ_IDX, GAIN_IDX, Q_IDX, PluginRanges
from aaexp.errors import AaexpError


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
    again = load_model(path)
    np.testing.assert_array_equal(again.encode(data), trained.encode(data))
    z = np.random.default_rng(2).uniform(-1, 1, (5, cfg.model.latent_dim))
    np.testing.assert_array_equal(again.decode(z), trained.decode(z))
    np.testing.assert_array_equal(again.centroids["warm"], trained.centroids["warm"])
    torch.save({"format": "other"}, tmp_path / "x.pt")
    with pytest.raises(AaexpError, match="not an"):
        load_model(tmp_path / "x.pt")
