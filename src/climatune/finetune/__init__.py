"""Fine-tuning: network surgery for a new task, freezing strategies, the ridge probe, the normaliser merge."""

from climatune.finetune.freezing import (
    GradualUnfreezing,
    apply_strategy,
    count_trainable,
    set_trainable,
)
from climatune.finetune.probe import RidgeProbe, fit_ridge_probe
from climatune.finetune.settings import FinetuneConfig, NormalizationChoice, NormalizationPolicy
from climatune.finetune.surgery import SurgeryReport, adapt_network
from climatune.finetune.transfer import (
    adapt_parent,
    finetune_normalization,
    merged_normalizer,
    seeded,
)

__all__ = [
    "adapt_network",
    "adapt_parent",
    "apply_strategy",
    "count_trainable",
    "finetune_normalization",
    "FinetuneConfig",
    "fit_ridge_probe",
    "GradualUnfreezing",
    "merged_normalizer",
    "NormalizationChoice",
    "NormalizationPolicy",
    "RidgeProbe",
    "seeded",
    "set_trainable",
    "SurgeryReport",
]
