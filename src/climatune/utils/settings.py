"""The base of every config section: unknown keys, NaN and infinity are refused."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Section"]


class Section(BaseModel):
    # NaN and infinity are never a valid setting: refuse them in every float field
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
