from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from climatune.errors import ClimatuneError
from climatune.models import ClimateNet, apply_lora, build_net, has_lora, merge_lora

from .conftest import TINY, VARIABLES

pytest.importorskip("peft")


def _train(net: ClimateNet, fields, static, steps: int = 2) -> None:
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    target = torch.randn_like(net(fields, static))
    for _ in range(steps):
        opt.zero_grad()
        (net(fields, static) - target).square().mean().backward()
        opt.step()


@pytest.mark.parametrize("name", ["unet", "vit"])
def test_lora_trains_adapters_only_and_merges_exactly(name: str, tmp_path, make_inputs) -> None:
    net = build_net(name, VARIABLES, history=2, n_static=3, n_out=2, **TINY)
    plain_keys = set(net.state_dict())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    apply_lora(net, rank=2, alpha=4)
    assert has_lora(net)
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert all("lora_" in n or n.startswith(("stem.", "head.")) for n in trainable)
    assert any("lora_" in n for n in trainable) and "stem.bias" in trainable

    fields, static = make_inputs(16, 24)
    lora_state = {k: v.clone() for k, v in net.state_dict().items()}
    _train(net, fields, static)
    changed = {k for k, v in net.state_dict().items() if not torch.equal(v, lora_state[k])}
    assert changed and all("lora_" in k or k.startswith(("stem.", "head.")) for k in changed)
    assert any("lora_B" in k for k in changed) and any(k.startswith("head.") for k in changed)

    net.eval()
    merged = merge_lora(net)
    assert has_lora(net) and not has_lora(merged)  # not in place by default
    assert set(merged.state_dict()) == plain_keys
    assert all(p.requires_grad for p in merged.parameters())
    torch.testing.assert_close(merged(fields, static), net(fields, static), rtol=1e-5, atol=1e-5)
    moved = [
        k
        for k in plain_keys
        if k.startswith("backbone.") and not torch.equal(merged.state_dict()[k], before[k])
    ]
    assert moved  # the adapters really changed backbone weights

    save_file(merged.state_dict(), tmp_path / "w.safetensors")
    clone = ClimateNet.from_spec(merged.spec())
    clone.load_state_dict(load_file(tmp_path / "w.safetensors"))
    torch.testing.assert_close(clone.eval()(fields, static), merged(fields, static))


def test_lora_targets_and_trainable_groups() -> None:
    net = build_net("resnet", VARIABLES, history=2, n_static=3, **TINY)
    apply_lora(net, target="backbone.stage1", trainable="head")
    lora_names = {n for n, _ in net.named_parameters() if "lora_" in n}
    assert lora_names and all(n.startswith("backbone.blocks.1.") for n in lora_names)
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == lora_names | {n for n, _ in net.head.named_parameters(prefix="head")}
    with pytest.raises(ClimatuneError, match="already has LoRA"):
        apply_lora(net)
    merge_lora(net, inplace=True)
    assert not has_lora(net)
