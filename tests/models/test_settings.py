"""The ``model`` config section: every backbone and head option reaches the network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torch import nn

from climatune.config import load_config
from climatune.errors import ClimatuneError
from climatune.models import build_net
from climatune.models.settings import ModelConfig

from .conftest import VARIABLES

FIXTURES = Path(__file__).parents[1] / "fixtures"


def net_from(*sets: str, head: str = "field", grid_shape: tuple[int, int] = (16, 32)):
    """The network ``new_net`` builds from these ``--set`` overrides (tiny sizes)."""
    m = load_config(None, ["model.width=8", "model.depth=2", *sets]).model
    return build_net(
        m.backbone,
        VARIABLES,
        history=2,
        n_static=3,
        n_out=2,
        head=head,
        grid_shape=grid_shape,
        head_kwargs=m.head,
        **m.options,
    )


def test_unet_options_reach_the_network() -> None:
    net = net_from("model.mults=[1, 3, 2]", "model.edge_padding=replicate", "model.dropout=0.25")
    enc = net.backbone.enc
    assert [block[0].conv.out_channels for block in enc] == [8, 24, 16]
    assert enc[0][0].pad.edge_padding == "replicate"
    assert enc[0][3].p == 0.25


def test_resnet_options_reach_the_network() -> None:
    net = net_from("model.backbone=resnet", "model.blocks=3", "model.depth=4", "model.width=12")
    assert len(net.backbone.blocks) == 4 and len(net.backbone.blocks[0]) == 3
    assert net.stem.width == 12 and net.backbone.blocks[0][0].body[2].conv.out_channels == 12


def test_vit_options_reach_the_network() -> None:
    net = net_from(
        "model.backbone=vit",
        "model.patch=2",
        "model.dim=16",
        "model.heads=2",
        "model.mlp_ratio=3",
        grid_shape=(10, 20),
    )
    vit = net.backbone
    assert vit.embed.proj.kernel_size == (2, 2) and vit.embed.proj.out_channels == 16
    assert vit.blocks[0].attn.heads == 2 and vit.blocks[0].mlp[0].out_features == 48
    assert vit.embed.pos.shape[-2:] == (5, 10)  # grid_shape comes from the data


def test_scalar_head_options_reach_the_network() -> None:
    sets = ("model.head.hidden=12", "model.head.norm=none", "model.head.dropout=0.3")
    head = net_from(*sets, head="scalar").head
    assert head.mlp[0].out_features == 12 and head.mlp[2].p == 0.3
    assert isinstance(head.norm, nn.Identity)


def test_field_head_has_no_options() -> None:
    assert isinstance(net_from(head="field").head.proj, nn.Conv2d)
    with pytest.raises(ClimatuneError, match="head 'field' has no option 'hidden'; it has no"):
        net_from("model.head.hidden=12", head="field")


def test_options_are_read_from_yaml(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  backbone: resnet\n  blocks: 1\n  head: {hidden: 8}\n")
    m = load_config(path).model
    assert m.options == {
        "width": 32,
        "depth": 3,
        "dropout": 0.0,
        "edge_padding": "zeros",
        "blocks": 1,
    }
    assert m.head == {"hidden": 8}


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ["model.mult=[1, 2]"],
            "config key 'model.mult' in --set: backbone 'unet' has no option 'mult' "
            "(did you mean 'mults'?); its options are: width, depth, dropout, edge_padding, mults",
        ),
        (
            ["model.backbone=resnet", "model.block=2"],
            "backbone 'resnet' has no option 'block' (did you mean 'blocks'?)",
        ),
        (
            ["model.head.hiden=8"],
            "config key 'model.head.hiden' in --set: no head has an option 'hiden' "
            "(did you mean 'hidden'?); they have: dropout, hidden, norm",
        ),
        (["model.periodic_lon=true"], "gets 'periodic_lon' from the data; remove it"),
        (["model.dropout=1.0"], "config key 'model.dropout' in --set: Input should be less"),
        (["model.head.hidden=0"], "config key 'model.head.hidden' in --set: Input should be"),
    ],
)
def test_a_wrong_option_is_one_line_naming_the_closest(sets, message) -> None:
    with pytest.raises(ClimatuneError) as err:
        load_config(None, sets)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_old_configs_drop_other_backbones_options_at_their_default() -> None:
    old = {"backbone": "unet", "width": 4, "depth": 1, "dropout": 0.0, "patch": 4, "heads": 4}
    assert ModelConfig.model_validate({**old, "residual": True}) == ModelConfig(width=4, depth=1)
    with pytest.raises(
        ClimatuneError, match="'patch' is an option of backbone 'vartoken_vit' and 'vit', not of "
    ):
        load_config(None, ["model.patch=8"])


@pytest.mark.parametrize("version", ["artifact_v0", "artifact_v1"])
def test_configs_inside_committed_artifacts_load(version: str) -> None:
    meta = json.loads((FIXTURES / version / "model" / "climatune.json").read_text())
    m = ModelConfig.model_validate(meta["config"]["model"])
    assert m.backbone == "unet" and m.options["width"] == 4 and m.options["depth"] == 1
    assert "patch" not in m.options


def test_a_resolved_config_may_switch_backbone() -> None:
    resolved = ModelConfig().model_dump(mode="json")
    vit = ModelConfig.model_validate({**resolved, "backbone": "vit"})
    assert vit.options["patch"] == 4 and "mults" not in vit.options
