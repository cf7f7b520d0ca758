"""The variable-token ViT on CUDA: bf16 autocast, checkpointing and compilation agree with
fp32 eager. Skipped where torch sees no CUDA GPU; on a GPU machine run ``pytest tests/gpu``."""

from __future__ import annotations

import pytest
import torch

from climatune.models import build_net

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_bf16_checkpointed_compiled_step_matches_fp32():
    torch.manual_seed(0)
    kw = {"width": 16, "depth": 2, "dim": 128, "patch": 4, "grid_shape": (32, 64)}
    names = ["tas", "sst", "siconc", "zg500"]
    net = build_net("vartoken_vit", names, history=3, n_static=2, n_out=1, **kw).cuda()
    fields = torch.randn(8, 4, 3, 32, 64, device="cuda")
    fields[:, 1, :, :8] = float("nan")  # sst missing over "land"
    static = torch.randn(2, 32, 64, device="cuda")
    ref = net(fields, static)
    net.backbone.activation_checkpointing = True
    fast = torch.compile(net)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = fast(fields, static)
    out.float().square().mean().backward()
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.05)
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
