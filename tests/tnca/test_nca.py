"""The NCA's growth rules, readout range and resizing, checked in closed form."""

import numpy as np
import pytest
import torch

from aaexp.core.errors import AaexpError
from aaexp.tnca.nca import OutputSpec, SpectrogramNCA, resize_bins


def make(padding="zero", alive="soft", alpha_bias=1.0, fire_rate=1.0, h=10, w=12, outputs=None):
    outputs = outputs or [OutputSpec("mel", "mel", h, 0)]
    return SpectrogramNCA(8, 1, [16], padding, fire_rate, alpha_bias, alive, 0.1, h, w, outputs, -80.0, 0.0)


def randomise(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


def test_seed_is_one_live_cell_at_the_centre():
    x = make().seed()
    assert x.shape == (1, 8, 10, 12)
    assert x.sum() == 1.0 and x[0, 1, 5, 6] == 1.0


def test_notebook_init_makes_every_cell_alive_after_one_step():
    # Last layer zero except the alive bias (+1): every cell's alpha becomes clamp(0 + 1) = 1, so
    # the soft mask keeps the whole grid, and nothing else changes yet.
    x = make().step(make().seed())
    expected = np.zeros((8, 10, 12))
    expected[1] = 1.0
    np.testing.assert_array_equal(x[0].detach().numpy(), expected)


def test_threshold_mode_keeps_dead_cells_dead():
    model = randomise(make(alive="threshold", alpha_bias=0.0))
    x = model.seed()
    for _ in range(2):
        x = model.step(x)
    # After two steps nothing can live further than two cells (Chebyshev) from the seed.
    i, j = np.nonzero(np.abs(x[0].detach().numpy()).sum(0))
    assert len(i) and np.abs(i - 5).max() <= 2 and np.abs(j - 6).max() <= 2


def test_circular_step_commutes_with_translation_and_zero_padding_does_not():
    x = torch.randn(1, 8, 10, 12, generator=torch.Generator().manual_seed(3))
    x[:, 1] = 1.0  # all alive
    shift = lambda t: torch.roll(t, shifts=(3, 5), dims=(2, 3))  # noqa: E731
    circ = randomise(make(padding="circular"))
    with torch.no_grad():
        torch.testing.assert_close(circ.step(shift(x)), shift(circ.step(x)), atol=1e-5, rtol=1e-5)
        zero = randomise(make(padding="zero"))
        assert (zero.step(shift(x)) - shift(zero.step(x))).abs().max() > 1e-2


def test_fire_rate_updates_about_that_share_of_cells():
    model = randomise(make(fire_rate=0.5, alive="threshold", alpha_bias=0.0, h=40, w=40))
    x = torch.zeros(1, 8, 40, 40)
    x[:, 1] = 1.0
    torch.manual_seed(0)
    with torch.no_grad():
        changed = (model.step(x) - x).abs().sum(1)[0] > 0
    assert 0.4 < changed.float().mean().item() < 0.6


def test_readout_maps_tanh_onto_the_contract_range():
    model = make(outputs=[OutputSpec("mel", "mel", 10, 0), OutputSpec("lin", "linear", 10, 2, range=(-11.5, 4.5))])
    x = torch.zeros(1, 8, 10, 12)
    x[0, 0, :, :4], x[0, 0, :, 4:8], x[0, 0, :, 8:] = 50.0, 0.0, -50.0
    out = model.readout(x)
    np.testing.assert_allclose(out["mel"][0, 0].numpy(), [0.0] * 4 + [-40.0] * 4 + [-80.0] * 4, atol=1e-5)
    np.testing.assert_allclose(out["lin"][0, 0, 0].item(), (4.5 - 11.5) / 2, atol=1e-6)  # tanh(0): the midpoint


def test_resize_bins_pools_and_interpolates():
    x = torch.arange(8.0).view(1, 8, 1).repeat(1, 1, 3)
    np.testing.assert_allclose(resize_bins(x, 4)[0, :, 0].numpy(), x[0, :, 0].numpy().reshape(4, 2).mean(1))
    up = resize_bins(x, 15)[0, :, 0].numpy()
    np.testing.assert_allclose(up, np.linspace(0, 7, 15), atol=1e-5)  # linear data stays linear


def test_bad_settings_are_one_line_errors():
    with pytest.raises(AaexpError, match="padding"):
        make(padding="reflect")
    with pytest.raises(AaexpError, match="fire_rate"):
        make(fire_rate=0.0)
    with pytest.raises(AaexpError, match="distinct"):
        make(outputs=[OutputSpec("mel", "mel", 10, 1)])


def test_alive_fraction_counts_the_seed_neighbourhood_and_a_dead_grid():
    model = make()
    seed = model.seed()
    assert model.alive_fraction(seed) == pytest.approx(9 / (10 * 12))  # maxpool3 of one live cell
    assert model.alive_fraction(torch.zeros_like(seed)) == 0.0
