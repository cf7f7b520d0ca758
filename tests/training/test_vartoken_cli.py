"""The variable-token ViT end to end through the command line: pre-train, then fine-tune
on another grid with a variable more and one less."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

from climatune import load_model
from climatune.cli import main
from climatune.testing import create_test_data, tiny_archive


def test_pretrain_then_finetune_through_the_cli(tmp_path, capsys):
    archive = tiny_archive(tmp_path / "tiny.nc")
    cfg = tmp_path / "pre.yaml"
    cfg.write_text(
        f"data:\n  path: {archive}\n  variables: [tas, sst]\n  batch_size: 8\n"
        "  split: {train: [2000, 2004], val: [2005, 2005], test: [2006, 2007]}\n"
        "model:\n  backbone: vartoken_vit\n  width: 8\n  depth: 1\n  dim: 16\n  patch: 4\n"
        "  activation_checkpointing: true\n"
        "trainer:\n  max_epochs: 1\n  progress_bar: false\n"
    )
    assert main(["pretrain", "--config", str(cfg), "--out", str(tmp_path / "pre")]) == 0
    pre = load_model(tmp_path / "pre")
    arch = pre.meta.data["architecture"]
    assert arch["backbone"] == "vartoken_vit"
    assert arch["backbone_kwargs"]["activation_checkpointing"] is True
    # fine-tune on another grid, with pr added and sst dropped
    ds = create_test_data(ntime=96, nlat=12, nlon=20, seed=3)
    ds["pr"] = (ds.tas - 250.0).assign_attrs(units="kg m-2 s-1")
    other = tmp_path / "other.nc"
    ds.to_netcdf(other)
    ft = tmp_path / "ft.yaml"
    ft.write_text(
        f"data:\n  path: {other}\n  variables: [tas, pr]\n  targets: [tas]\n  batch_size: 8\n"
        "  split: {train: [2000, 2004], val: [2005, 2005], test: [2006, 2007]}\n"
        "finetune:\n  strategy: lora\n"
        "trainer:\n  max_epochs: 1\n  progress_bar: false\n"
    )
    argv = ["finetune", "--config", str(ft), "--from", str(tmp_path / "pre")]
    assert main([*argv, "--out", str(tmp_path / "ft")]) == 0
    assert "model written to" in capsys.readouterr().out
    model = load_model(tmp_path / "ft")
    assert model.net.stem.variables == ["tas", "pr"]
    before = load_file(str(tmp_path / "pre" / "model" / "weights.safetensors"))
    after = load_file(str(tmp_path / "ft" / "model" / "weights.safetensors"))
    assert "stem.tokens.pr.embed" in after and "stem.tokens.sst.embed" not in after
    # the backbone transferred, and LoRA moved it (adapters merged into the weights)
    kept = [k for k in before if k.startswith("backbone.") and k in after]
    assert kept and any(not torch.equal(before[k], after[k]) for k in kept)
    pred = model.predict(ds)
    assert pred.sizes["lat"] == 12 and pred.sizes["lon"] == 20
    assert 150 < float(pred.tas.mean()) < 350
    meta = json.loads((tmp_path / "ft" / "model" / "climatune.json").read_text())
    assert len(meta["grid"]["lat"]) == 12
