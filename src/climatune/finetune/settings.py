"""The ``finetune`` config section: strategy, freezing, LoRA and the normalisation policy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from climatune.utils.settings import Section

__all__ = ["FinetuneConfig", "NormalizationChoice", "NormalizationPolicy"]


NormalizationChoice = Literal["auto", "keep", "refit", "force_keep"]


class NormalizationPolicy(Section):
    """Per variable, whether fine-tuning keeps the pre-trained statistics or refits them.

    ``auto`` keeps them unless the new training data have clearly shifted (see
    :meth:`~climatune.data.normalize.Normalizer.shift`), and then refits and says so.
    ``keep`` refuses clearly shifted data; ``force_keep`` keeps the statistics anyway
    (a warmer scenario meant to be read as a warm anomaly) and says so. ``refit`` always
    refits on the new training years.
    """

    default: NormalizationChoice = "auto"
    variables: dict[str, NormalizationChoice] = Field(default_factory=dict)


class FinetuneConfig(Section):
    strategy: Literal["full", "linear_probe", "ridge_probe", "partial", "gradual", "lora"] = "full"
    freeze_stages: int = Field(1, ge=0)
    unfreeze_epoch: int = Field(2, ge=0)
    lora_rank: int = Field(4, gt=0)
    lora_alpha: float = Field(8.0, gt=0)
    ridge_folds: int = Field(
        5, ge=2, description="blocks of training years that choose the ridge_probe penalty"
    )
    normalization: NormalizationPolicy = Field(default_factory=NormalizationPolicy)
