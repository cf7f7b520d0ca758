"""``climatune pretrain`` and the scratch baseline: a new network trained on a config's task."""

from __future__ import annotations

from pathlib import Path

from climatune.config import Config, config_inputs
from climatune.data.view import TaskView, build_view
from climatune.training.workflow import Scratch, run_ensemble, run_training
from climatune.utils.atomic import prepare_output_dir, releases_outputs
from climatune.workflows.resume import refuse_ensemble_resume, resume_checkpoint
from climatune.workflows.runs import default_run_dir, training_setup, write_config

__all__ = ["pretrain", "train_scratch", "without_backbone_lr_scale"]


@releases_outputs
def train_scratch(
    cfg: Config,
    view: TaskView,
    out: Path,
    *,
    resume: Path | None = None,
    logs: bool = True,
    origin: str = "scratch",
    overwrite: bool = False,
) -> Path:
    """Train a fresh network on ``view``; writes ``out/config.yaml`` and ``out/model``.

    With ``ensemble.members`` N > 1, N networks seeded ``seed`` .. ``seed + N - 1``
    (:func:`~climatune.training.workflow.run_ensemble`), one artifact.

    ``origin`` is recorded in the artifact and names the command in ``out``'s stamp:
    ``scratch`` for the baseline of a fine-tune, ``pretrain`` for ``climatune pretrain``.
    ``overwrite`` replaces an earlier run of the same kind at ``out``.

    The scratch baseline of a fine-tune trains every weight at ``optim.lr``: its
    ``optim.backbone_lr_scale``, which slows a pre-trained backbone, is set to 1, as there
    is nothing pre-trained to keep (the run's ``config.yaml`` records it).
    """
    out = Path(out)
    if origin == "scratch":
        cfg = without_backbone_lr_scale(cfg)

    def start() -> None:  # the run folder is created only once the inputs are known to be good
        prepare_output_dir(
            out,
            command=origin,
            inputs=config_inputs(cfg),
            overwrite=overwrite,
            resume=resume is not None,
        )
        write_config(out, cfg)

    if cfg.ensemble.members > 1:
        refuse_ensemble_resume(resume, cfg)
        run_ensemble(
            view,
            out,
            training_setup(cfg),
            members=cfg.ensemble.members,
            member_init=lambda k, setup: (Scratch(), ()),
            origin=origin,
            start=start,
            logs=logs,
        )
        return out
    run_training(
        view,
        out,
        training_setup(cfg),
        init=Scratch(),
        origin=origin,
        start=start,
        resume=resume,
        logs=logs,
    )
    return out


@releases_outputs
def pretrain(
    cfg: Config,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """``climatune pretrain``: train a network from scratch and write ``RUN/model``.

    ``resume`` continues a killed pretrain run; ``overwrite`` replaces an earlier pretrain
    run at ``out``. Any other non-empty ``out`` is refused.
    """
    out = prepare_output_dir(
        resume or out or default_run_dir(cfg, "pretrain"),
        command="pretrain",
        inputs=config_inputs(cfg),
        overwrite=overwrite,
        resume=resume is not None,
        create=False,
    )
    refuse_ensemble_resume(resume, cfg)
    resume_checkpoint(resume, cfg)
    return train_scratch(
        cfg,
        build_view(cfg.data, cfg.task),
        out,
        resume=Path(resume) if resume else None,
        origin="pretrain",
        overwrite=overwrite,
    )


def without_backbone_lr_scale(cfg: Config) -> Config:
    """``cfg`` with ``optim.backbone_lr_scale`` 1: every weight of a new network trains at
    ``optim.lr`` (the scale is for fine-tuning, where it slows the pre-trained backbone)."""
    if cfg.optim.backbone_lr_scale == 1.0:
        return cfg
    optim = cfg.optim.model_copy(update={"backbone_lr_scale": 1.0})
    return cfg.model_copy(update={"optim": optim})
