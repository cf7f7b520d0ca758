from __future__ import annotations

import pytest
import torch

from climatune.errors import ClimatuneError
from climatune.models import Backbone, create_backbone, list_backbones, register_backbone


def test_list_backbones() -> None:
    assert list_backbones() == ["resnet", "unet", "vartoken_vit", "vit"]
    assert list_backbones("*net") == ["resnet", "unet"]
    assert list_backbones("nothing*") == []


def test_unknown_backbone_names_the_closest() -> None:
    with pytest.raises(ClimatuneError, match="unknown backbone 'unte'.*did you mean 'unet'"):
        create_backbone("unte")


def test_unknown_option_names_the_closest() -> None:
    with pytest.raises(ClimatuneError, match="no option 'dpeth'.*did you mean 'depth'"):
        create_backbone("resnet", dpeth=2)


@pytest.mark.parametrize("name", ["resnet", "unet", "vit"])
@pytest.mark.parametrize("shape", [(37, 49), (16, 32)])
def test_full_resolution_on_any_grid(name: str, shape: tuple[int, int]) -> None:
    net = create_backbone(name, width=8, depth=2)
    out = net.forward_features(torch.randn(2, 8, *shape))
    assert out.shape == (2, net.out_channels, *shape)
    assert torch.isfinite(out).all()
    assert net.backbone_name == name
    assert create_backbone(name, **net.hparams).hparams == net.hparams


def test_register_backbone_refuses_a_taken_name() -> None:
    with pytest.raises(ValueError, match="already registered"):

        @register_backbone("unet")
        class Other(Backbone):
            pass
