"""Training callbacks of our own (everything else comes from Lightning)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

__all__ = ["SampleLedger", "weights_digest"]


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer, in state-dict order."""
    h = hashlib.sha256()
    for key, value in module.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class SampleLedger(Callback):
    """Record which samples each rank trained on, and its final weights' digest.

    Writes ``logs/ledger-rank{R}.json``; used to prove that distributed ranks see
    disjoint samples and finish with identical weights.
    """

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.anchors: list[int] = []

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int
    ) -> None:
        self.anchors.extend(int(a) for a in batch["anchor"])

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        path = self.out / "logs" / f"ledger-rank{trainer.global_rank}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "rank": trainer.global_rank,
                    "world_size": trainer.world_size,
                    "anchors": self.anchors,
                    "weights": weights_digest(pl_module),
                }
            )
        )
