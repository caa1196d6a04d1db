"""Loss terms: the per-bin weighting fix vs the notebook's scalar bug, Gram matrices, weights."""

import numpy as np
import pytest
import torch

from aaexp.tnca.losses import GramLoss, MultiResolutionSTFTLoss, SpectrogramLoss, frequency_weights
from aaexp.tnca.nca import OutputSpec

SPEC = [OutputSpec("mel", "mel", 16, 0)]


def loss_cfg(apply, high=5.0, gram_weight=0.0, l1_weight=0.5, mask_below=None):
    return {"gram_weight": gram_weight, "l1_weight": l1_weight, "mask_below": mask_below,
            "freq_weight": {"shape": "linspace", "low": 1.0, "high": high, "apply": apply},
            "gram_cnn": {"channels": [4, 4, 4], "kernels": [3, 3, 3], "seed": 0}}


def l1_grad(apply, high):
    gen = torch.full((1, 16, 6), 1.0, requires_grad=True)  # above the target everywhere: sign = +1
    SpectrogramLoss(loss_cfg(apply, high), SPEC)({"mel": gen}, {"mel": torch.zeros(1, 16, 6)})["loss/total"].backward()
    return gen.grad[0].numpy()


def test_per_bin_weighting_changes_the_gradient_of_the_top_bins():
    g = l1_grad("per_bin", 5.0)
    w = np.linspace(1, 5, 16)
    # d/dgen of 0.5·mean(w_f·|gen − t|) = 0.5·w_f / (16·6): five times larger in the top bin.
    np.testing.assert_allclose(g, np.repeat(0.5 * w[:, None] / 96, 6, axis=1), rtol=1e-6)
    assert g[-1, 0] / g[0, 0] == pytest.approx(5.0)


def test_scalar_weight_does_not_change_the_gradient_shape():
    # The notebook's bug: a reduced scalar times linspace(1, 2) then mean = scalar · mean(w) = 1.5×.
    g = l1_grad("scalar", 2.0)
    np.testing.assert_allclose(g, np.full((16, 6), 0.5 * 1.5 / 96), rtol=1e-6)
    assert g[-1, 0] / g[0, 0] == pytest.approx(1.0)


def test_notebook_mask_hides_cells_below_the_threshold():
    tgt = torch.full((1, 16, 6), -75.0)
    tgt[:, :8] = -10.0
    gen = torch.full((1, 16, 6), -40.0)
    out = SpectrogramLoss(loss_cfg("per_bin", high=1.0, mask_below=-70.0), SPEC)({"mel": gen}, {"mel": tgt})
    # Only the 8 unmasked rows count: mean |(-40) - (-10)| over all 96 cells with half zeroed = 15.
    assert out["loss/l1_mel"].item() == pytest.approx(30.0 * 48 / 96)


def test_gram_matrix_matches_einsum_and_loss_vanishes_on_identical_inputs():
    f = torch.randn(2, 3, 4, 5)
    expected = np.einsum("bchw,bdhw->bcd", f.numpy(), f.numpy()) / (3 * 4 * 5)
    np.testing.assert_allclose(GramLoss.gram(f).numpy(), expected, rtol=1e-5, atol=1e-6)
    g = GramLoss(seed=0)
    x = torch.randn(1, 80, 89)
    assert g(x, x).item() == 0.0 and g(x, x + 1).item() > 0
    # Three stride-2 convolutions: 80×89 -> 10×12 feature maps (ceil halvings).
    assert g.features(x[:, None]).shape == (1, 64, 10, 12)


def test_gram_features_do_not_depend_on_the_global_rng():
    torch.manual_seed(1)
    a = GramLoss(seed=7)
    torch.manual_seed(2)
    b = GramLoss(seed=7)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb)
    assert not any(p.requires_grad for p in a.parameters())


def test_frequency_weight_shapes():
    np.testing.assert_allclose(frequency_weights(7, "linspace", 1, 5).numpy(), np.linspace(1, 5, 7), rtol=1e-6)
    np.testing.assert_allclose(frequency_weights(7, "exp", 1, 5).numpy(), np.geomspace(1, 5, 7), rtol=1e-5)
    np.testing.assert_allclose(frequency_weights(7, "none").numpy(), np.ones(7))


def test_mrstft_wrapper_trims_to_the_shorter_signal():
    import auraloss

    x, y = torch.randn(1, 9000), torch.randn(1, 8000)
    ours = MultiResolutionSTFTLoss([512, 256], [128, 64], [512, 256])(x, y)
    ref = auraloss.freq.MultiResolutionSTFTLoss([512, 256], [128, 64], [512, 256])(x[:, None, :8000], y[:, None])
    assert ours.item() == pytest.approx(ref.item())
