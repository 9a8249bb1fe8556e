"""Every loss decreases when a tiny network trains on a tiny batch, and ignores what it should."""

from __future__ import annotations

import pytest
import torch

from training.losses import IGNORE, LOSSES, build_loss


def _batch():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16, generator=g)
    mask = (x[:, 0] > 0.6).to(torch.uint8)  # the landslide is where band 0 is bright
    mask[:, 0, :] = IGNORE
    return x, mask


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_decreases_on_a_tiny_batch(name):
    torch.manual_seed(0)
    x, mask = _batch()
    net = torch.nn.Conv2d(3, 1, 1)  # the task is linearly separable: band 0 > 0.6
    loss_fn = build_loss(name)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    with torch.no_grad():
        first = float(loss_fn(net(x), mask))
    for _ in range(60):
        opt.zero_grad()
        loss = loss_fn(net(x), mask)
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = float(loss_fn(net(x), mask))
    assert last < 0.8 * first, (first, last)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_ignored_pixels_do_not_change_the_loss(name):
    x, mask = _batch()
    logits = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    changed = logits.clone()
    changed[:, :, 0, :] = 50.0  # row 0 is ignored
    fn = build_loss(name)
    assert float(fn(logits, mask)) == pytest.approx(float(fn(changed, mask)), rel=1e-5, abs=1e-6)


def test_weighted_bce_matches_torch_on_valid_pixels():
    logits = torch.tensor([[[[2.0, -1.0, 0.5]]]])
    mask = torch.tensor([[[1, 0, IGNORE]]], dtype=torch.uint8)
    got = build_loss("weighted_bce", pos_weight=3.0)(logits, mask)
    expected = (
        3.0 * torch.nn.functional.softplus(torch.tensor(-2.0))
        + torch.nn.functional.softplus(torch.tensor(-1.0))
    ) / 2
    assert float(got) == pytest.approx(float(expected), rel=1e-6)


def test_focal_with_gamma_zero_and_no_alpha_is_bce():
    logits = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    mask = (torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(3)) > 0.5).to(torch.uint8)
    focal = build_loss("focal", gamma=0.0, alpha=None)(logits, mask)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], mask.float())
    assert float(focal) == pytest.approx(float(bce), rel=1e-6)


def test_lovasz_is_zero_for_a_confident_perfect_prediction():
    mask = torch.zeros(1, 4, 4, dtype=torch.uint8)
    mask[0, :2] = 1
    logits = (mask.float() * 2 - 1)[:, None] * 5.0  # margin > 1 everywhere
    assert float(build_loss("lovasz")(logits, mask)) == pytest.approx(0.0)


def test_unknown_loss_names_the_valid_ones():
    with pytest.raises(ValueError, match="focal"):
        build_loss("hinge")
