"""Numbers that cannot be right are refused: a loss that turns NaN, NaN weights on export.

Divergence is simulated by poisoning the weights at the start of epoch 1 (as a too-high
learning rate would); the run must stop with one line naming the epoch, keep the
checkpoint of epoch 0 and write no model.
"""

from __future__ import annotations

import pytest
import torch

from climatune.cli import main
from climatune.errors import ClimatuneError
from climatune.inference import save_artifact
from climatune.models.net import build_net
from climatune.training.task import ClimateTask
from tests.reliability.conftest import base_config, leftovers, write_config


@pytest.mark.parametrize(
    ("hook", "stage"), [("on_train_epoch_start", "train"), ("on_validation_epoch_start", "val")]
)
def test_a_loss_that_turns_nan_stops_and_keeps_the_last_good_checkpoint(
    hook, stage, shared, tmp_path, monkeypatch, capsys
):
    original = getattr(ClimateTask, hook)

    def diverge(self):
        original(self)
        if self.current_epoch == 1:
            with torch.no_grad():
                for p in self.net.parameters():
                    p.fill_(float("nan"))

    monkeypatch.setattr(ClimateTask, hook, diverge)
    cfg = write_config(
        tmp_path / "cfg.yaml", base_config(shared["archive"]), "trainer.max_epochs=3"
    )
    run = tmp_path / "run"
    capsys.readouterr()

    rc = main(["pretrain", "--config", str(cfg), "--out", str(run)])

    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("climatune: error: ") and err.count("\n") == 1, err
    assert f"the {stage} loss became nan at epoch 1, step " in err
    assert "lower optim.lr (e.g. 0.0001)" in err
    assert f"the last good checkpoint is kept in {run / 'checkpoints' / 'last.ckpt'}" in err
    assert not (run / "model").exists() and leftovers(tmp_path) == []
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 0
    state = ckpt["state_dict"]
    assert state and all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_an_artifact_with_nan_weights_is_never_written(tmp_path):
    net = build_net("unet", variables=["tas"], history=1, n_static=5, n_out=1, width=8, depth=1)
    with torch.no_grad():
        next(net.parameters())[0] = float("nan")

    with pytest.raises(ClimatuneError, match="tensor 'stem.+' holds NaN or infinite values"):
        save_artifact(tmp_path / "model", net, {}, torch.zeros(5, 8, 16))

    assert list(tmp_path.iterdir()) == []
