"""What the training commands share: the setup read from the config, and the run folder."""

from __future__ import annotations

from pathlib import Path

from climatune.config import Config, dump_config
from climatune.training.workflow import TrainingSetup
from climatune.utils.atomic import atomic_path, other_rank

__all__ = ["training_setup", "write_config", "default_run_dir"]


def training_setup(cfg: Config) -> TrainingSetup:
    """The sections of ``cfg`` that :func:`~climatune.training.workflow.run_training` reads."""
    return TrainingSetup(
        model=cfg.model,
        optim=cfg.optim,
        trainer=cfg.trainer,
        data=cfg.data,
        task=cfg.task,
        seed=cfg.seed,
        record=cfg.model_dump(mode="json"),
    )


def default_run_dir(cfg: Config, prefix: str) -> Path:
    """``runs/PREFIX-KIND``: where a command writes when no ``--out`` is given."""
    return Path("runs") / f"{prefix}-{cfg.task.kind}"


def write_config(out: Path, cfg: Config) -> None:
    """Write the resolved config into the run (rank 0 only: the run folder is its own)."""
    if other_rank():
        return
    with atomic_path(out / "config.yaml") as tmp:
        tmp.write_text(dump_config(cfg))
