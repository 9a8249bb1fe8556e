"""Every architecture builds offline, with any band count, and outputs one logit map."""

from __future__ import annotations

import pytest
import torch

from training.models import ARCHITECTURES, build_model, canonical_architecture


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_architecture_builds_and_keeps_the_tile_shape(arch):
    torch.manual_seed(0)
    model = build_model(arch, "resnet18", in_channels=5).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 5, 64, 64))
    assert out.shape == (1, 1, 64, 64)


def test_names_from_the_papers_are_accepted():
    assert canonical_architecture("U-Net++") == "unetplusplus"
    assert canonical_architecture("DeepLabV3+") == "deeplabv3plus"
    assert canonical_architecture("MA-Net") == "manet"
    with pytest.raises(ValueError, match="unet"):
        canonical_architecture("vnet")


def test_unknown_encoder_is_refused():
    with pytest.raises(Exception, match="(?i)encoder|wrong"):
        build_model("unet", "no_such_encoder", 3)
