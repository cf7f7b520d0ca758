"""The Lightning task: a :class:`~climatune.models.net.ClimateNet` plus loss and optimiser.

Training, validation and test share one ``_step``. The residual over the matching input at
step t (persistence for forecasts, the bilinear field for downscaling) is part of the
network: see :meth:`~climatune.models.net.ClimateNet.set_residual`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import lightning.pytorch as pl
import torch
from torch import nn

from climatune.errors import ClimatuneError
from climatune.models.heads import PooledBatchNorm
from climatune.models.padding import lon_padding, periodic_lon
from climatune.training.losses import scored_cells, weighted_gaussian_crps, weighted_mse
from climatune.training.objectives import RandomCrop, Reconstruction, Window

__all__ = ["ClimateTask", "NonFiniteLoss"]


class NonFiniteLoss(ClimatuneError):
    """The loss turned NaN or infinite: training stops before the weights are saved."""


PRECISE_BATCHES = 64  # training batches that the pooled statistics are recomputed from


class ClimateTask(pl.LightningModule):
    """Train a ClimateNet with a latitude-weighted, NaN-masked MSE, or, for a Gaussian
    head (``model.head_distribution: gaussian``), the same weighting of its closed-form
    CRPS (:func:`~climatune.training.losses.weighted_gaussian_crps`).

    Parameters
    ----------
    net
        The network (with its residual connection); called as ``net(fields, static)``.
    static
        ``[S, H, W]`` static inputs shared by every sample.
    weight
        ``[H, W]`` loss weights (cos-latitude inside the scored region).
    lr, weight_decay, warmup_fraction, backbone_lr_scale
        AdamW with linear warm-up then cosine decay; the backbone's learning rate is
        scaled by ``backbone_lr_scale`` (discriminative fine-tuning).
    seed
        Seeds dropout, masks and crops per epoch.
    objectives, kind
        Objective -> loss weight (``task.objectives``); the loss is their weighted sum,
        each objective's own loss logged as ``{stage}_{name}_loss``. ``kind`` names the
        network's own objective. ``None``: the network's loss alone.
    reconstruction
        The masked-reconstruction objective's head, when ``objectives`` weighs it.
    crop
        Random windows of the training batches (``task.random_crop``).
    """

    def __init__(
        self,
        net: nn.Module,
        static: torch.Tensor,
        weight: torch.Tensor,
        *,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        warmup_fraction: float = 0.05,
        backbone_lr_scale: float = 1.0,
        seed: int = 0,
        objectives: Mapping[str, float] | None = None,
        kind: str = "forecast",
        reconstruction: Reconstruction | None = None,
        crop: RandomCrop | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("static", static.float(), persistent=False)
        self.register_buffer("weight", weight.float(), persistent=False)
        self.lr, self.weight_decay = lr, weight_decay
        self.warmup_fraction, self.backbone_lr_scale = warmup_fraction, backbone_lr_scale
        self.seed = seed
        self.objectives = None if objectives is None else dict(objectives)
        self.kind, self.reconstruction, self.crop = kind, reconstruction, crop
        self._scored: dict[str, int] = {}  # per stage, the batches of this epoch with a loss

    @property
    def backbone(self) -> nn.Module:
        """The network's backbone (what Lightning's BackboneFinetuning unfreezes)."""
        return self.net.backbone

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        static = self.static.expand(fields.shape[0], *self.static.shape)
        return self.net(fields, static)

    def _window(self, batch: dict[str, torch.Tensor], stage: str, batch_idx: int) -> Window:
        """The batch, whole, or in random windows when training with ``crop``."""
        fields = batch["fields"]
        whole = Window(
            fields,
            batch["target"],
            self.static.expand(fields.shape[0], *self.static.shape),
            self.weight,
            periodic=periodic_lon(self.net),
        )
        if self.crop is None or stage != "train":
            return whole
        return self.crop(whole, batch["anchor"], self.current_epoch, batch_idx)

    def losses(
        self, batch: dict[str, torch.Tensor], stage: str, batch_idx: int = 0
    ) -> dict[str, torch.Tensor]:
        """Each objective's loss on ``batch``: the network's own (``kind``), and masked
        reconstruction when it is weighed. Empty (no entry at all) when the batch, or its
        window, holds no target cell to score (:func:`scored_cells`)."""
        win = self._window(batch, stage, batch_idx)
        weight = win.weight if win.target.dim() == 4 else None
        if scored_cells(win.target, weight) == 0:
            return {}
        with lon_padding(self.net, win.periodic):
            pred, scale = self.net.forward_dist(win.fields, win.static)
            if scale is None:
                own = weighted_mse(pred, win.target, weight)
            else:
                own = weighted_gaussian_crps(pred, scale, win.target, weight)
            out = {self.kind: own}
            if self.reconstruction is not None:
                epoch = self.current_epoch if stage == "train" else None
                out["reconstruct"] = self.reconstruction.loss(self.net, win, batch["anchor"], epoch)
        return out

    def _step(
        self, batch: dict[str, torch.Tensor], stage: str, batch_idx: int = 0
    ) -> torch.Tensor | None:
        """The batch's loss, logged with its size; None for a batch with no target cell.

        Such a batch (every target missing: a source that lacks the variable, a window
        over land for an SST target) has no loss: it counts in no logged mean, and
        training skips its step, so neither Adam's momentum nor weight decay moves the
        weights on it. Distributed training cannot skip a step on one process: there it
        backpropagates zero, unlogged.
        """
        parts = self.losses(batch, stage, batch_idx)
        self._scored[stage] = self._scored.get(stage, 0) + bool(parts)
        if not parts:
            if stage == "train" and self._trainer is not None and self.trainer.world_size > 1:
                return sum(p.sum() * 0.0 for p in self.parameters() if p.requires_grad)
            return None
        if self.objectives is None:
            loss = parts[self.kind]
        else:
            loss = sum(w * parts[name] for name, w in self.objectives.items())
        if not torch.isfinite(loss):  # checked before backward: no NaN reaches the weights
            raise NonFiniteLoss(
                f"the {stage} loss became {loss.item()} at epoch {self.current_epoch}, step "
                f"{self.global_step} (optim.lr={self.lr:g}); training stopped, lower optim.lr "
                f"(e.g. {self.lr / 10:g}) or set trainer.gradient_clip_val"
            )
        size = batch["fields"].shape[0]
        self.log(
            f"{stage}_loss",
            loss,
            prog_bar=stage != "test",
            on_epoch=True,
            on_step=stage == "train",
            batch_size=size,
            sync_dist=stage != "train",
        )
        for name in self.objectives or ():
            self.log(
                f"{stage}_{name}_loss",
                parts[name],
                on_epoch=True,
                on_step=False,
                batch_size=size,
                sync_dist=stage != "train",
            )
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train", batch_idx)

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        """Refuse validation years without a single target value: ``val_loss`` (what early
        stopping and the best checkpoint follow) would not exist."""
        if self._scored.get("val") == 0 and not self.trainer.sanity_checking:
            raise ClimatuneError(
                "no validation sample has a target value (every target cell is missing in "
                "the val years of data.split): move data.split.val to years with data"
            )

    def test_step(self, batch, batch_idx):
        return self._step(batch, "test")

    def predict_step(self, batch, batch_idx):
        return self(batch["fields"])

    def on_validation_epoch_start(self) -> None:
        """Recompute a scalar head's pooled statistics on the training samples (precise BN).

        Running averages lag the features while the backbone trains, and pooled features
        share a large value across samples with a small spread: a lagging mean put
        validation losses of small index tasks off by orders of magnitude between epochs.
        Statistics computed for the current weights keep validation, the checkpoint and
        the exported model consistent with training.
        """
        self._scored["val"] = 0
        norms = [m for m in self.net.modules() if isinstance(m, PooledBatchNorm)]
        if not norms or self.trainer.state.fn != "fit":
            return
        momenta = [norm.momentum for norm in norms]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average over the batches below
            norm.train()
        with torch.no_grad():
            for _, batch in zip(range(PRECISE_BATCHES), self.trainer.train_dataloader):
                self(batch["fields"].to(self.device))
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
            norm.eval()

    def on_train_epoch_start(self) -> None:
        # Dropout and masks draw from a generator seeded by epoch: resuming replays exactly.
        torch.manual_seed(self.seed * 1_000_003 + self.current_epoch)

    def configure_optimizers(self):
        backbone, rest = [], []
        for name, p in self.net.named_parameters():
            if p.requires_grad:
                (backbone if name.startswith("backbone.") else rest).append(p)
        if self.reconstruction is not None:  # its head learns at the head's rate
            rest += [p for p in self.reconstruction.parameters() if p.requires_grad]
        groups = [{"params": rest, "lr": self.lr, "name": "stem_head"}]
        if backbone:
            groups.append(
                {"params": backbone, "lr": self.lr * self.backbone_lr_scale, "name": "backbone"}
            )
        opt = torch.optim.AdamW(groups, lr=self.lr, weight_decay=self.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(self.warmup_fraction * total)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
