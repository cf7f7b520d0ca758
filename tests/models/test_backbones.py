from __future__ import annotations

import pytest
import torch

from climatune.models import build_net, create_backbone
from climatune.models.backbones.base import Backbone

from .conftest import TINY, VARIABLES


@pytest.mark.parametrize("name", ["resnet", "unet", "vit"])
@pytest.mark.parametrize("shape", [(37, 49), (16, 32)])
def test_net_output_shape_on_odd_grids(name: str, shape: tuple[int, int], make_inputs) -> None:
    net = build_net(name, VARIABLES, history=2, n_static=3, n_out=5, **TINY)
    fields, static = make_inputs(*shape)
    assert net(fields, static).shape == (2, 5, *shape)


def test_vit_runs_on_another_grid_with_interpolated_positions() -> None:
    vit = create_backbone("vit", width=8, depth=2, patch=4, grid_shape=(16, 32))
    assert vit.embed.pos.shape[-2:] == (4, 8)
    assert vit.embed.position(4, 8) is vit.embed.pos
    assert vit.embed.position(6, 10).shape[-2:] == (6, 10)
    h = torch.randn(2, 8, 24, 40)
    out = vit(h)
    assert out.shape == (2, 8, 24, 40)
    # The transformer branch (output minus the input skip) contributes, and the
    # interpolated position embedding shapes it.
    branch = out - h
    assert branch.std() > 0.1
    with torch.no_grad():
        vit.embed.pos.zero_()
    assert (vit(h) - out).abs().mean() > 1e-3


@pytest.mark.parametrize(("name", "shift"), [("resnet", 5), ("unet", 8)])
def test_periodic_lon_commutes_with_lon_roll(name: str, shift: int) -> None:
    # 20 lat rows is not a multiple of 2**depth: the U-Net pads latitude too.
    h = torch.randn(2, 8, 20, 32)
    periodic = create_backbone(name, width=8, depth=2, periodic_lon=True).eval()
    torch.testing.assert_close(periodic(h.roll(shift, -1)), periodic(h).roll(shift, -1))
    regional = create_backbone(name, width=8, depth=2, periodic_lon=False).eval()
    assert not torch.allclose(regional(h.roll(shift, -1)), regional(h).roll(shift, -1), atol=1e-4)


def test_periodic_net_commutes_with_lon_roll(make_inputs) -> None:
    net = build_net("unet", VARIABLES, history=2, n_static=3, periodic_lon=True, **TINY).eval()
    fields, static = make_inputs(12, 24)
    rolled = net(fields.roll(4, -1), static.roll(4, -1))
    torch.testing.assert_close(rolled, net(fields, static).roll(4, -1))


@pytest.mark.parametrize("name", ["resnet", "unet", "vit"])
def test_stages_partition_the_parameters(name: str) -> None:
    net = create_backbone(name, width=8, depth=3)
    ids = [id(p) for s in net.stages() for p in s.parameters()]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in net.parameters()}
    assert all(any(True for _ in s.parameters()) for s in net.stages())


@pytest.mark.parametrize("name", ["resnet", "unet", "vit"])
def test_gradients_reach_every_parameter(name: str, make_inputs) -> None:
    net = build_net(name, VARIABLES, history=2, n_static=3, n_out=2, **TINY)
    net.stem.add_variables(["new"])  # zero-initialised, but still learns
    fields, static = make_inputs(16, 24, n_vars=4)
    net(fields, static).square().mean().backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


def test_dropout_is_active_in_training_only(make_inputs) -> None:
    net = build_net("unet", VARIABLES, history=2, n_static=3, dropout=0.5, **TINY)
    fields, static = make_inputs(16, 16)
    assert not torch.equal(net(fields, static), net(fields, static))
    net.eval()
    assert torch.equal(net(fields, static), net(fields, static))


@pytest.mark.parametrize("name", ["resnet", "unet", "vit"])
def test_set_periodic_lon_matches_a_periodic_build(name: str) -> None:
    kw = {"width": 8, "depth": 2, "edge_padding": "replicate"}
    regional = create_backbone(name, periodic_lon=False, **kw).eval()
    periodic = create_backbone(name, periodic_lon=True, **kw).eval()
    periodic.load_state_dict(regional.state_dict())
    h = torch.randn(1, 8, 12, 18)  # not a multiple of 4: the lon padding wraps too
    assert not torch.allclose(regional(h), periodic(h))
    regional.set_periodic_lon(True)
    assert regional.hparams == periodic.hparams
    torch.testing.assert_close(regional(h), periodic(h))


def test_a_backbone_without_its_contract_cannot_be_built() -> None:
    class NoStages(Backbone):
        def forward_features(self, h: torch.Tensor) -> torch.Tensor:
            return h

    with pytest.raises(TypeError, match="abstract.*stages"):
        NoStages()
