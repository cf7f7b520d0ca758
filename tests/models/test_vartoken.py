"""The variable-token ViT: names not positions, any grid, missing data, freezing, LoRA."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from climatune.errors import ClimatuneError
from climatune.finetune.freezing import apply_strategy
from climatune.finetune.settings import FinetuneConfig
from climatune.models import ClimateNet, VariableTokenStem, build_net, merge_lora

NAMES = ["tas", "sst", "siconc"]


def _net(**kw) -> ClimateNet:
    torch.manual_seed(0)
    options = {"width": 8, "depth": 2, "dim": 16, "patch": 4, "grid_shape": (16, 32), **kw}
    return build_net("vartoken_vit", NAMES, history=2, n_static=3, n_out=1, **options)


def _inputs(h: int = 16, w: int = 32, b: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(h * 100 + w)
    return torch.randn(b, 3, 2, h, w, generator=gen), torch.randn(3, h, w, generator=gen)


def test_its_stem_is_a_token_group_per_variable():
    net = _net()
    assert isinstance(net.stem, VariableTokenStem)
    assert net.stem.variables == NAMES
    fields, static = _inputs()
    groups = net.stem(fields, static)
    assert groups.shape == (2, 4, 17, 4, 8)  # 3 variables + statics; dim + valid fraction
    assert torch.equal(groups[:, :, -1], torch.ones(2, 4, 4, 8))


def test_permuting_the_variables_leaves_the_output_unchanged():
    net = _net().eval()
    fields, static = _inputs()
    out = net(fields, static, names=NAMES)
    order = [2, 0, 1]
    permuted = net(fields[:, order], static, names=[NAMES[i] for i in order])
    torch.testing.assert_close(permuted, out, atol=1e-5, rtol=1e-5)
    assert out.abs().mean() > 0.1  # not trivially equal


@pytest.mark.parametrize("shape", [(16, 32), (13, 21), (40, 24)])
def test_the_same_weights_read_any_grid_and_any_subset(shape):
    net = _net()
    fields, static = _inputs(*shape)
    full = net(fields, static)
    assert full.shape == (2, 1, *shape) and torch.isfinite(full).all()
    subset = net(fields[:, [1, 0]], static, names=["sst", "tas"])
    assert subset.shape == full.shape and torch.isfinite(subset).all()
    assert not torch.allclose(subset, full)  # siconc's tokens are gone
    with pytest.raises(ClimatuneError, match="unexpected: \\['psl'\\]"):
        net(fields[:, :1], static, names=["psl"])


def test_an_all_missing_variable_is_left_out_rather_than_read_as_zeros():
    net = _net().eval()
    fields, static = _inputs()
    without = net(fields[:, :2], static, names=["tas", "sst"])
    missing = fields.clone()
    missing[:, 2] = float("nan")
    torch.testing.assert_close(net(missing, static), without, atol=1e-5, rtol=1e-5)
    zeros = fields.clone()
    zeros[:, 2] = 0.0
    assert not torch.allclose(net(zeros, static), without, atol=1e-3)


def test_new_variables_get_fresh_weights_and_the_spec_rebuilds_the_net():
    net = _net()
    net.stem.add_variables(["pr"])
    net.stem.drop_variables(["siconc"])
    assert net.stem.variables == ["tas", "sst", "pr"]
    assert torch.count_nonzero(net.stem.tokens["pr"].proj.weight) == 0
    assert torch.count_nonzero(net.stem.tokens["pr"].embed) > 0
    net.stem.reset_static(2)
    twin = ClimateNet.from_spec(net.spec())
    twin.load_state_dict(net.state_dict())
    fields, _ = _inputs()
    static = torch.randn(2, 16, 32)
    torch.testing.assert_close(twin(fields, static), net(fields, static))


def _step(net: ClimateNet) -> set[str]:
    """Names of the parameters one SGD step on every trainable parameter changes."""
    fields, static = _inputs()
    before = {k: v.detach().clone() for k, v in net.named_parameters()}
    trainable = [p for p in net.parameters() if p.requires_grad]
    if trainable:
        net(fields, static).square().mean().backward()
        torch.optim.SGD(trainable, lr=0.1).step()
    return {k for k, v in net.named_parameters() if not torch.equal(v, before[k])}


@pytest.mark.parametrize(
    "strategy", ["full", "linear_probe", "ridge_probe", "partial", "gradual", "lora"]
)
def test_each_strategy_trains_only_what_it_should(strategy):
    net = _net()
    names = {k for k, _ in net.named_parameters()}
    stem = {k for k in names if k.startswith("stem.")}
    head = {k for k in names if k.startswith("head.")}
    first = {k for k in names if k.startswith("backbone.aggregate.")}
    cfg = FinetuneConfig(strategy=strategy, freeze_stages=1)
    net, callbacks = apply_strategy(net, cfg)
    if strategy == "gradual":  # Lightning freezes the backbone before training
        callbacks[0].freeze_before_training(SimpleNamespace(backbone=net.backbone))
    changed = _step(net)
    backbone = {k for k in changed if k.startswith("backbone.")}
    if strategy == "full":
        assert changed == names
    elif strategy in ("linear_probe", "gradual"):
        assert changed == stem | head
    elif strategy == "ridge_probe":
        assert not changed
    elif strategy == "partial":
        assert changed == names - first
    else:  # lora: adapters on the attention and MLP linears, the stem and the head
        assert backbone and all("lora_" in k for k in backbone)
        adapted = {k.split(".lora_")[0] for k in backbone}
        assert any(".attn.qkv" in k for k in adapted) and any(".mlp.0" in k for k in adapted)
        assert any("aggregate.kv" in k for k in adapted)
        assert changed - backbone == stem | head
        assert set(merge_lora(net).state_dict()) == set(_net().state_dict())


def test_activation_checkpointing_gives_the_same_gradients():
    grads = []
    for flag in (False, True):
        net = _net(activation_checkpointing=flag, dropout=0.0).train()
        fields, static = _inputs()
        net(fields, static).square().mean().backward()
        grads.append({k: p.grad.clone() for k, p in net.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], atol=1e-6, rtol=1e-5)


def test_periodic_longitude_reaches_the_stem_padding():
    net = _net()
    net.set_periodic_lon(True)
    assert net.stem.periodic_lon and net.backbone.hparams["periodic_lon"]
    fields, static = _inputs(16, 30)  # padded by 2 columns: wrapped, not zeros
    assert net(fields, static).shape == (2, 1, 16, 30)


def test_a_scalar_head_pools_its_features():
    torch.manual_seed(0)
    net = build_net(
        "vartoken_vit", NAMES, history=2, n_static=3, n_out=2, head="scalar", width=8, depth=1
    )
    fields, static = _inputs(13, 21)
    assert net(fields, static).shape == (2, 2)


def test_without_grid_position_patches_are_placed_by_the_inputs_alone():
    fields, static = _inputs(16, 32)
    shift = (torch.roll(fields, 8, -1), torch.roll(static, 8, -1))  # two patches east
    for grid_position in (False, True):
        net = _net(grid_position=grid_position).eval()
        assert (net.backbone.aggregate.pos is None) is not grid_position
        moved = torch.roll(net(fields, static), 8, -1)
        same = torch.allclose(net(*shift), moved, atol=1e-5, rtol=1e-4)
        assert same is not grid_position  # the learned grid embedding pins patches in place
