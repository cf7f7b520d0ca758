"""The ``explain`` config section."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from climatune.utils.settings import Section

__all__ = ["ExplainConfig"]


class ExplainConfig(Section):
    """Which climate component each input variable belongs to, when its CF
    standard_name does not say (e.g. ``{my_sst: ocean}``)."""

    components: dict[str, Literal["atmosphere", "ocean", "ice", "land", "other"]] = Field(
        default_factory=dict
    )
