"""The ``optim``, ``trainer`` and ``ensemble`` config sections (values passed through to
Lightning are checked)."""

from __future__ import annotations

import re
from typing import Any, get_args

from pydantic import Field, ValidationInfo, field_validator

from climatune.errors import closest
from climatune.models.ensemble import MAX_MEMBERS
from climatune.utils.settings import Section

__all__ = ["EnsembleConfig", "OptimConfig", "TrainerConfig"]


def _lightning_choices(kind: str) -> list[str]:
    """The accelerators, strategies or precisions that Lightning knows (imported lazily)."""
    if kind == "precision":
        from lightning.fabric.connector import _PRECISION_INPUT

        flat = [a for arg in get_args(_PRECISION_INPUT) for a in get_args(arg)]
        return list(dict.fromkeys(str(p) for p in flat))
    from lightning.pytorch.accelerators import AcceleratorRegistry
    from lightning.pytorch.strategies import StrategyRegistry

    if kind == "accelerator":
        return ["auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators())]
    return ["auto", *StrategyRegistry.available_strategies()]


def _choice(kind: str, value: str) -> str:
    names = _lightning_choices(kind)
    if value not in names:
        raise ValueError(f"unknown {kind}{closest(value, names)}; choose one of {', '.join(names)}")
    return value


class OptimConfig(Section):
    lr: float = 1e-3
    weight_decay: float = Field(1e-4, ge=0)
    warmup_fraction: float = Field(0.05, ge=0, lt=1)
    backbone_lr_scale: float = Field(1.0, gt=0)

    @field_validator("lr")
    @classmethod
    def _positive_lr(cls, value: float) -> float:
        if not 0 < value <= 1:
            raise ValueError("the learning rate must be positive and at most 1, e.g. 1e-3")
        return value


class TrainerConfig(Section):
    max_epochs: int = Field(20, gt=0)
    max_steps: int = Field(-1, ge=-1, description="-1: no limit")
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    num_nodes: int = Field(1, gt=0)
    precision: str = "32-true"
    gradient_clip_val: float = Field(1.0, ge=0)
    patience: int = Field(5, gt=0)
    log_every_n_steps: int = Field(10, gt=0)
    progress_bar: bool = True
    limit_train_batches: float | int = Field(1.0, gt=0, description="a fraction or a count")
    record_samples: bool = False
    compile: bool = Field(
        False,
        description="torch.compile the network: fused kernels, several times faster on a "
        "GPU at large batches; the first steps pay for the compilation",
    )

    @field_validator("accelerator", "strategy", "precision", mode="before")
    @classmethod
    def _known(cls, value: Any, info: ValidationInfo) -> str:
        return _choice(str(info.field_name), str(value))  # YAML reads precision: 16 as an int

    @field_validator("devices")
    @classmethod
    def _devices(cls, value: int | str) -> int | str:
        text = str(value).replace(" ", "")
        if text == "auto" or (text not in ("0", "0,") and re.fullmatch(r"-1|\d+(,\d+)*,?", text)):
            return value
        raise ValueError("devices must be a count >= 1, -1 (all), 'auto' or GPU ids such as '0,1'")

    @field_validator("max_steps")
    @classmethod
    def _max_steps(cls, value: int) -> int:
        if value == 0:
            raise ValueError("max_steps must be -1 (no limit) or at least 1")
        return value

    @field_validator("limit_train_batches")
    @classmethod
    def _limit(cls, value: float | int) -> float | int:
        if isinstance(value, float) and value > 1:
            raise ValueError("limit_train_batches must be a fraction in (0, 1] or a whole count")
        return value


class EnsembleConfig(Section):
    """A deep ensemble: ``members`` networks trained alike, member k seeded with ``seed + k``.

    One member (the default) is a single network, as without this section.
    """

    members: int = Field(
        1,
        ge=1,
        le=MAX_MEMBERS,
        description="networks in the ensemble; each trains in turn, so the time grows with it",
    )
