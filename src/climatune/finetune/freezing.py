"""Fine-tuning strategies: which parameters train, and when.

``full`` trains everything; ``linear_probe`` freezes the backbone; ``ridge_probe`` freezes
everything and fits a ridge readout in closed form (index tasks, see
:mod:`climatune.finetune.probe`); ``partial`` freezes the first N backbone stages; ``gradual`` freezes the backbone and lets Lightning's
:class:`~lightning.pytorch.callbacks.BackboneFinetuning` unfreeze it on a schedule;
``lora`` trains low-rank adapters (through peft) and the head.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import BackboneFinetuning, Callback
from torch import nn

from climatune.errors import ClimatuneError
from climatune.finetune.settings import FinetuneConfig
from climatune.models.lora import apply_lora
from climatune.models.net import ClimateNet

__all__ = ["apply_strategy", "set_trainable", "count_trainable", "GradualUnfreezing"]


class GradualUnfreezing(BackboneFinetuning):
    """Lightning's BackboneFinetuning, keeping our warm-up/cosine schedule in step.

    When the backbone's parameter group is added to the optimiser, the learning-rate
    scheduler learns about it too, so the new group follows the same schedule. A run
    resumed after the unfreezing gets its backbone group back from Lightning; here its
    schedule, and its parameters' gradients, come back too.
    """

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch > self.unfreeze_backbone_at_epoch:  # resumed after it
            self.make_trainable(pl_module.backbone)
        for config in trainer.lr_scheduler_configs:
            sched = config.scheduler
            if hasattr(sched, "lr_lambdas"):  # its lambdas are not in the checkpoint
                missing = len(sched.base_lrs) - len(sched.lr_lambdas)
                sched.lr_lambdas.extend([sched.lr_lambdas[0]] * missing)

    def finetune_function(self, pl_module, epoch: int, optimizer) -> None:
        before = len(optimizer.param_groups)
        super().finetune_function(pl_module, epoch, optimizer)
        for config in pl_module.trainer.lr_scheduler_configs:
            sched = config.scheduler
            for group in optimizer.param_groups[before:]:
                group.setdefault("initial_lr", group["lr"])
                sched.base_lrs.append(group["initial_lr"])
                if hasattr(sched, "lr_lambdas"):
                    sched.lr_lambdas.append(sched.lr_lambdas[0])


def set_trainable(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def count_trainable(module: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts."""
    params = list(module.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def apply_strategy(net: ClimateNet, cfg: FinetuneConfig) -> tuple[ClimateNet, list[Callback]]:
    """Freeze ``net`` as ``cfg.strategy`` says; returns the (maybe wrapped) net and callbacks."""
    set_trainable(net, True)
    if cfg.strategy == "full":
        return net, []
    if cfg.strategy == "linear_probe":
        set_trainable(net.backbone, False)
        return net, []
    if cfg.strategy == "ridge_probe":  # no gradient step: the head is solved for
        set_trainable(net, False)
        return net, []
    if cfg.strategy == "partial":
        stages = net.backbone.stages()
        if cfg.freeze_stages > len(stages):
            raise ClimatuneError(
                f"finetune.freeze_stages={cfg.freeze_stages} but the backbone has {len(stages)} stages"
            )
        for stage in stages[: cfg.freeze_stages]:
            set_trainable(stage, False)
        return net, []
    if cfg.strategy == "gradual":
        return net, [
            GradualUnfreezing(
                unfreeze_backbone_at_epoch=cfg.unfreeze_epoch, backbone_initial_ratio_lr=0.1
            )
        ]
    if cfg.strategy == "lora":
        return apply_lora(net, rank=cfg.lora_rank, alpha=cfg.lora_alpha), []
    raise ClimatuneError(f"unknown fine-tuning strategy {cfg.strategy!r}")
