"""The ``model`` config section: which registered backbone, and its options."""

from __future__ import annotations

from pydantic import Field, field_validator

from climatune.errors import closest
from climatune.utils.settings import Section

__all__ = ["ModelConfig"]


class ModelConfig(Section):
    backbone: str = "unet"
    width: int = Field(32, gt=0)
    depth: int = Field(3, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    patch: int = Field(4, gt=0)
    heads: int = Field(4, gt=0)
    residual: bool = True

    @field_validator("backbone")
    @classmethod
    def _registered(cls, value: str) -> str:
        from climatune.models.registry import list_backbones

        names = list_backbones()
        if value not in names:
            raise ValueError(
                f"unknown backbone{closest(value, names)}; choose one of {', '.join(names)}"
            )
        return value
