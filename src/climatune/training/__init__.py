"""Training: the one training workflow (:func:`run_training`), the Lightning task, data module and resume."""

from climatune.training.callbacks import SampleLedger, weights_digest
from climatune.training.datamodule import IN_MEMORY_BYTES, ClimateDataModule
from climatune.training.losses import weighted_mse
from climatune.training.resume import MetricsHistory, StopOnSignal, completed_epoch, interruptible
from climatune.training.settings import EnsembleConfig, OptimConfig, TrainerConfig
from climatune.training.task import ClimateTask, NonFiniteLoss
from climatune.training.workflow import (
    FromArtifact,
    MemberInit,
    Scratch,
    TrainingSetup,
    build_task,
    export_model,
    member_setup,
    new_net,
    residual_index,
    run_ensemble,
    run_training,
)

__all__ = [
    "build_task",
    "ClimateDataModule",
    "ClimateTask",
    "EnsembleConfig",
    "completed_epoch",
    "export_model",
    "FromArtifact",
    "IN_MEMORY_BYTES",
    "interruptible",
    "MetricsHistory",
    "new_net",
    "NonFiniteLoss",
    "OptimConfig",
    "residual_index",
    "run_ensemble",
    "run_training",
    "member_setup",
    "MemberInit",
    "SampleLedger",
    "Scratch",
    "StopOnSignal",
    "TrainerConfig",
    "TrainingSetup",
    "weighted_mse",
    "weights_digest",
]
