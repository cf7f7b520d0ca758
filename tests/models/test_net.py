from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from climatune.errors import ClimatuneError
from climatune.models import ClimateNet, build_net

from .conftest import TINY, VARIABLES


def _net(name: str = "unet", **kw) -> ClimateNet:
    return build_net(name, VARIABLES, history=2, n_static=3, n_out=2, **{**TINY, **kw})


def test_forward_is_head_of_features(make_inputs) -> None:
    net = _net().eval()
    fields, static = make_inputs(12, 20)
    feats = net.forward_features(fields, static)
    assert feats.shape == (2, net.backbone.out_channels, 12, 20)
    torch.testing.assert_close(net.forward_head(feats), net(fields, static))


def test_reset_head_keeps_the_backbone(make_inputs) -> None:
    net = _net()
    backbone = {k: v.clone() for k, v in net.backbone.state_dict().items()}
    net.reset_head(4)
    fields, static = make_inputs(12, 20)
    assert net(fields, static).shape == (2, 4, 12, 20)
    net.reset_head(1, "scalar", hidden=8)
    assert net.head_kind == "scalar"
    assert net(fields, static).shape == (2, 1)
    for k, v in net.backbone.state_dict().items():
        assert torch.equal(v, backbone[k]), k


@pytest.mark.parametrize("name", ["resnet", "unet", "vit"])
def test_param_groups_cover_every_parameter_once(name: str) -> None:
    net = _net(name)
    groups = net.param_groups()
    n_stages = len(net.backbone.stages())
    assert list(groups) == ["stem", *(f"backbone.stage{i}" for i in range(n_stages)), "head"]
    ids = [id(p) for ps in groups.values() for p in ps]
    assert len(ids) == len(set(ids)) == len(list(net.parameters()))
    assert all(groups.values())


def test_freeze_and_unfreeze_groups() -> None:
    net = _net()
    assert net.freeze(["stem", "backbone.stage[01]"]) == [
        "stem",
        "backbone.stage0",
        "backbone.stage1",
    ]
    groups = net.param_groups()
    frozen = {g for g, ps in groups.items() if not any(p.requires_grad for p in ps)}
    assert frozen == {"stem", "backbone.stage0", "backbone.stage1"}
    net.freeze("backbone")
    assert not any(p.requires_grad for p in net.backbone.parameters())
    net.unfreeze()
    assert all(p.requires_grad for p in net.parameters())
    with pytest.raises(ClimatuneError, match="did you mean 'head'"):
        net.freeze("haed")


@pytest.mark.parametrize(
    ("name", "head"), [("resnet", "field"), ("unet", "scalar"), ("vit", "field")]
)
def test_spec_and_safetensors_round_trip(name: str, head: str, tmp_path, make_inputs) -> None:
    kw = {"grid_shape": [16, 24]} if name == "vit" else {}
    net = build_net(name, VARIABLES, 2, 3, 2, head, periodic_lon=True, **TINY, **kw)
    net.stem.add_variables(["pr"])
    net.stem.drop_variables(["sst"])
    with torch.no_grad():  # not the zero init any more, so the round trip is checked
        net.stem.proj["pr"].weight.normal_()
    save_file(net.state_dict(), tmp_path / "weights.safetensors")
    (tmp_path / "spec.json").write_text(json.dumps(net.spec()))

    spec = json.loads((tmp_path / "spec.json").read_text())
    assert spec["variables"] == ["tas", "siconc", "pr"]
    clone = ClimateNet.from_spec(spec)
    clone.load_state_dict(load_file(tmp_path / "weights.safetensors"), strict=True)
    fields, static = make_inputs(16, 24)
    net.eval(), clone.eval()
    torch.testing.assert_close(clone(fields, static), net(fields, static), rtol=0, atol=0)
    assert clone.spec() == spec


def test_from_spec_refuses_incomplete_or_newer_specs() -> None:
    spec = _net().spec()
    with pytest.raises(ClimatuneError, match="missing \\['variables'\\]"):
        ClimateNet.from_spec({k: v for k, v in spec.items() if k != "variables"})
    with pytest.raises(ClimatuneError, match="version 99"):
        ClimateNet.from_spec({**spec, "spec_version": 99})


def test_a_scalar_head_saved_before_norm_existed_loads_without_it() -> None:
    net = build_net("unet", VARIABLES, 2, 3, 1, "scalar", **TINY)
    assert net.spec()["head_kwargs"]["norm"] == "batch"
    old_spec = {**net.spec(), "head_kwargs": {"hidden": 64, "dropout": 0.0}}
    old_weights = {k: v for k, v in net.state_dict().items() if not k.startswith("head.norm.")}
    clone = ClimateNet.from_spec(old_spec)
    clone.load_state_dict(old_weights, strict=True)
    assert clone.head.hparams["norm"] == "none"
    assert ClimateNet.from_spec(clone.spec()).head.hparams == clone.head.hparams


def test_build_net_errors() -> None:
    with pytest.raises(ClimatuneError, match="did you mean 'resnet'"):
        build_net("resnt", VARIABLES)
    with pytest.raises(ClimatuneError, match="did you mean 'field'"):
        build_net("unet", VARIABLES, head="fields")
    with pytest.raises(ClimatuneError, match="depth"):
        build_net("unet", VARIABLES, depth=0)
    with pytest.raises(ClimatuneError, match="dropout=1.0"):
        build_net("resnet", VARIABLES, dropout=1.0)


def test_the_residual_base_is_part_of_the_network_and_its_spec(make_inputs) -> None:
    net = _net(residual_index=[1, -1]).eval()  # output 0 over input 1, output 1 bare
    fields, static = make_inputs(12, 20)
    bare = net.forward_head(net.forward_features(fields, static))
    out = net(fields, static)
    torch.testing.assert_close(out[:, 0], bare[:, 0] + fields[:, 1, -1], rtol=0, atol=0)
    torch.testing.assert_close(out[:, 1], bare[:, 1], rtol=0, atol=0)
    reordered = [VARIABLES[1], VARIABLES[0], *VARIABLES[2:]]  # the base is found by name
    swapped = fields[:, [1, 0, *range(2, len(VARIABLES))]]
    torch.testing.assert_close(net(swapped, static, names=reordered), out)
    assert ClimateNet.from_spec(net.spec()).residual_index == [1, -1]
    net.reset_head(3)
    assert net.residual_index == [-1, -1, -1]


def test_a_version_1_spec_has_no_residual_and_bad_indices_are_refused() -> None:
    spec = _net(residual_index=[0, 1]).spec()
    old = {k: v for k, v in spec.items() if k != "residual_index"}
    assert ClimateNet.from_spec({**old, "spec_version": 1}).residual_index == [-1, -1]
    with pytest.raises(ValueError, match="residual_index"):
        _net(residual_index=[0, len(VARIABLES)])
    with pytest.raises(ValueError, match="scalar head has no residual"):
        build_net("unet", VARIABLES, 2, 3, 1, "scalar", residual_index=[0], **TINY)
