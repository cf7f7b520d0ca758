"""``examples/foundation``: a config the CLI accepts, sized at about 100 M parameters."""

from __future__ import annotations

from pathlib import Path

import torch

from climatune.config import load_config
from climatune.models import build_net

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "foundation" / "pretrain.yaml"


def test_the_foundation_config_parses_and_has_about_100m_parameters():
    cfg = load_config(CONFIG)
    assert cfg.model.backbone == "vartoken_vit"
    assert cfg.model.options["activation_checkpointing"] is True
    assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.compile
    variables = ["tas", "sst", "siconc", "zg500"]  # zg on its one synthetic level
    with torch.device("meta"):  # counted, never allocated
        net = build_net(
            cfg.model.backbone,
            variables,
            history=cfg.task.history,
            n_static=4,
            n_out=len(variables),
            grid_shape=(32, 64),
            periodic_lon=True,
            **cfg.model.options,
        )
    n = sum(p.numel() for p in net.parameters())
    assert 90e6 < n < 110e6, n
    assert net.backbone.hparams["dim"] == 768 and net.backbone.hparams["heads"] == 12
