"""Determinism on the CPU: the same seed gives the same weights and byte-identical metrics.

The shared pretrained model (seed 0) is trained again with the same config, and once with
seed 1; each is evaluated with ``climatune evaluate`` and the ``metrics.json`` compared.
Fine-tuning it (new head, LoRA adapters) in two fresh processes gives the same weights.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from climatune import load_model
from climatune.cli import main
from climatune.testing import tiny_config
from climatune.training.callbacks import weights_digest
from climatune.workflows.pretraining import pretrain
from tests.reliability.conftest import BASE_SETS, base_config, climatune, write_config

pytestmark = pytest.mark.slow


def _metrics(model, config, out) -> bytes:
    assert (
        main(
            [
                "evaluate",
                str(model),
                "--config",
                str(config),
                "--baselines",
                "climatology",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return (out / "metrics.json").read_bytes()


def test_same_seed_same_metrics_other_seed_differs(shared, tmp_path):
    archive, config = shared["archive"], shared["config"]
    again = pretrain(tiny_config(archive, *BASE_SETS), out=tmp_path / "again")
    other = pretrain(tiny_config(archive, *BASE_SETS, "seed=1"), out=tmp_path / "other")
    assert weights_digest(load_model(again).net) == weights_digest(load_model(shared["model"]).net)
    assert weights_digest(load_model(other).net) != weights_digest(load_model(again).net)

    first = _metrics(shared["model"], config, tmp_path / "ev-first")
    second = _metrics(again, config, tmp_path / "ev-second")
    assert first == second
    differs = _metrics(other, config, tmp_path / "ev-other")
    rows = {(r["model"], r["variable"], r["metric"]): r["value"] for r in json.loads(differs)}
    same = {(r["model"], r["variable"], r["metric"]): r["value"] for r in json.loads(first)}
    net = [k for k in rows if k[0] == "pretrained"]
    assert net and any(rows[k] != same[k] for k in net)
    assert all(rows[k] == same[k] for k in rows if k[0] == "climatology")  # the data did not change


def test_finetune_same_seed_same_weights_in_fresh_processes(shared, tmp_path):
    sets = ("data.targets=[tas]", "finetune.strategy=lora")  # a new head and new adapters
    weights = {}
    for name, seed in (("first", 0), ("again", 0), ("other", 1)):
        config = write_config(
            tmp_path / f"{name}.yaml", base_config(shared["archive"], *sets, f"seed={seed}")
        )
        argv = ["finetune", "--config", str(config), "--from", str(shared["model"])]
        log = tmp_path / f"{name}.log"
        proc = climatune(*argv, "--out", str(tmp_path / name), log=log)
        assert proc.wait(timeout=600) == 0, log.read_text()[-2000:]
        weights[name] = load_file(str(tmp_path / name / "model" / "weights.safetensors"))
    first, again, other = weights["first"], weights["again"], weights["other"]
    # Tensors, not file bytes: safetensors writes its metadata map in a per-process order.
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)
