"""``climatune finetune``: adapt a pre-trained artifact to a new task and train it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from climatune.config import Config, config_inputs
from climatune.data.normalize import Normalizer
from climatune.data.samples import static_channels
from climatune.data.view import TaskView, build_view
from climatune.errors import ClimatuneError
from climatune.finetune.freezing import apply_strategy, count_trainable
from climatune.finetune.probe import fit_ridge_probe
from climatune.finetune.surgery import SurgeryReport
from climatune.finetune.transfer import adapt_parent, seeded
from climatune.inference import LoadedModel, load_model, model_paths
from climatune.models.net import ClimateNet
from climatune.training.objectives import pretraining_settings
from climatune.training.workflow import FromArtifact, run_ensemble, run_training
from climatune.utils.atomic import prepare_output_dir, releases_outputs
from climatune.workflows.resume import refuse_ensemble_resume, resume_checkpoint
from climatune.workflows.runs import default_run_dir, training_setup, write_config

__all__ = ["adapt_member", "check_members", "finetune", "prepare_finetune"]


def prepare_finetune(
    cfg: Config, source: str | Path, view: TaskView | None = None, member: int = 0
) -> tuple[LoadedModel, TaskView, Normalizer, ClimateNet, SurgeryReport]:
    """Load the parent, build the view, adapt the network; returns everything to train it.

    New weights (head, stem variables, static channels) are drawn from ``cfg.seed``.
    ``member`` picks the parent's network: member k of a pre-trained ensemble, or its
    only network when it has one.
    """
    parent = load_model(source)
    return adapt_member(cfg, parent, view, member, cfg.seed)


def adapt_member(
    cfg: Config, parent: LoadedModel, view: TaskView | None, k: int, seed: int
) -> tuple[LoadedModel, TaskView, Normalizer, ClimateNet, SurgeryReport]:
    """Fine-tuned member ``k``'s start: a copy of the parent's network ``k`` (its only one
    for a single model) adapted to the view, new weights drawn from ``seed``."""
    view = view if view is not None else build_view(cfg.data, cfg.task)
    own = parent.member(k if parent.members > 1 else 0)
    view, normalizer, net, report = adapt_parent(
        own,
        view,
        cfg.finetune.normalization,
        seed,
        cfg.model.head,
        cfg.data.normalization,
        cfg.model.head_distribution,
        per_source=cfg.data.source_normalization == "per_source",
    )
    return parent, view, normalizer, net, report


def check_members(parent: LoadedModel, members: int) -> None:
    """Fine-tuned members start from one pre-trained model, or from the members of a
    pre-trained ensemble one to one."""
    if parent.members > 1 and members != parent.members:
        raise ClimatuneError(
            f"the pre-trained model is an ensemble of {parent.members} members, and fine-tuned "
            f"members start from them one to one: set ensemble.members={parent.members} "
            f"(got {members})"
        )


@releases_outputs
def finetune(
    cfg: Config,
    source: str | Path,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    *,
    quiet: bool = False,
    view: TaskView | None = None,
    overwrite: bool = False,
) -> Path:
    """Fine-tune the artifact at ``source`` on ``cfg``'s task; writes ``RUN/model``.

    ``resume`` continues a killed finetune run; ``overwrite`` replaces an earlier finetune
    run at ``out``. Any other non-empty ``out``, or one that holds ``source``, is refused.
    """
    ridge = cfg.finetune.strategy == "ridge_probe"
    pretraining = pretraining_settings(cfg.task)
    if pretraining:
        raise ClimatuneError(
            f"{' and '.join(pretraining)} set how a network is pre-trained; a fine-tune trains "
            "its own task alone on whole samples: remove them from the fine-tuning config"
        )
    if resume is not None and ridge:
        raise ClimatuneError(
            "cannot resume a ridge_probe run: its head is solved in one step, with no epochs "
            "to continue; run it again (--overwrite replaces the earlier run)"
        )
    claim: dict[str, Any] = {
        "command": "finetune",
        "inputs": [*model_paths(source), *config_inputs(cfg)],
        "overwrite": overwrite,
        "resume": resume is not None,
    }
    out = prepare_output_dir(
        resume or out or default_run_dir(cfg, "finetune"), create=False, **claim
    )
    refuse_ensemble_resume(resume, cfg)
    resume_checkpoint(resume, cfg)
    parent = load_model(source)
    check_members(parent, cfg.ensemble.members)
    member = _member_start(
        cfg, parent, view if view is not None else build_view(cfg.data, cfg.task), ridge
    )
    first = member(0, cfg.seed)
    view, report = first.view, first.report  # the view in the parent's units

    def start() -> None:
        prepare_output_dir(out, **claim)  # created only once the inputs are known to be good
        if not quiet:
            _print_report(report, cfg, first.trainable, first.total)
        write_config(out, cfg)

    if cfg.ensemble.members > 1:
        run_ensemble(
            view,
            out,
            training_setup(cfg),
            members=cfg.ensemble.members,
            member_init=lambda k, setup: (first if k == 0 else member(k, setup.seed)).start,
            origin="finetune",
            start=start,
        )
        return out
    run_training(
        view,
        out,
        training_setup(cfg),
        init=first.init,
        origin="finetune",
        start=start,
        resume=Path(resume) if resume else None,
        callbacks=first.callbacks,
    )
    return out


@dataclass
class _Member:
    """How a fine-tuned member starts: its adapted network (freezing applied, a ridge head
    solved) and callbacks, the view in the parent's units, the surgery report, and the
    counts of trainable and all parameters."""

    init: FromArtifact
    callbacks: list
    view: TaskView
    report: SurgeryReport
    trainable: int
    total: int

    @property
    def start(self) -> tuple[FromArtifact, list]:
        return self.init, self.callbacks


def _member_start(
    cfg: Config, parent: LoadedModel, view: TaskView, ridge: bool
) -> Callable[[int, int], _Member]:
    """Member k's start, seeded with ``seed``, from the parent's network k (or its only one)."""

    def member(k: int, seed: int) -> _Member:
        _, mine, normalizer, net, report = adapt_member(cfg, parent, view, k, seed)
        with seeded(seed):  # LoRA adapters start from the seed, too
            net, callbacks = apply_strategy(net, cfg.finetune)
        if ridge:
            static = torch.from_numpy(static_channels(mine)[1])
            probe = fit_ridge_probe(net, mine, normalizer, static, folds=cfg.finetune.ridge_folds)
            report.new_head = probe.describe()
        init = FromArtifact(
            net,
            normalizer,
            parent=str(parent.model_dir),
            train=not ridge,
            lora=cfg.finetune.strategy == "lora",
        )
        return _Member(init, list(callbacks), mine, report, *count_trainable(net))

    return member


def _print_report(report: SurgeryReport, cfg: Config, trainable: int, total: int) -> None:
    console = Console(stderr=True, highlight=False)
    console.print(
        f"[bold]fine-tuning[/bold] ({cfg.finetune.strategy}): {trainable:,} of {total:,} parameters train"
    )
    for line in report.lines():
        console.print("  " + line)
