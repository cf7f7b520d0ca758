"""``climatune finetune``: adapt a pre-trained artifact to a new task and train it."""

from __future__ import annotations

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
from climatune.training.workflow import FromArtifact, run_training
from climatune.utils.atomic import prepare_output_dir, releases_outputs
from climatune.workflows.resume import resume_checkpoint
from climatune.workflows.runs import default_run_dir, training_setup, write_config

__all__ = ["finetune", "prepare_finetune"]


def prepare_finetune(
    cfg: Config, source: str | Path, view: TaskView | None = None
) -> tuple[LoadedModel, TaskView, Normalizer, ClimateNet, SurgeryReport]:
    """Load the parent, build the view, adapt the network; returns everything to train it.

    New weights (head, stem variables, static channels) are drawn from ``cfg.seed``.
    """
    parent = load_model(source)
    view = view if view is not None else build_view(cfg.data, cfg.task)
    view, normalizer, net, report = adapt_parent(
        parent, view, cfg.finetune.normalization, cfg.seed, cfg.model.head, cfg.data.normalization
    )
    return parent, view, normalizer, net, report


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
    resume_checkpoint(resume, cfg)
    parent, view, normalizer, net, report = prepare_finetune(cfg, source, view)
    with seeded(cfg.seed):  # LoRA adapters start from the seed, too
        net, callbacks = apply_strategy(net, cfg.finetune)
    if ridge:
        static = torch.from_numpy(static_channels(view)[1])
        probe = fit_ridge_probe(net, view, normalizer, static, folds=cfg.finetune.ridge_folds)
        report.new_head = probe.describe()
    trainable, total = count_trainable(net)

    def start() -> None:
        prepare_output_dir(out, **claim)  # created only once the inputs are known to be good
        if not quiet:
            _print_report(report, cfg, trainable, total)
        write_config(out, cfg)

    init = FromArtifact(
        net,
        normalizer,
        parent=str(parent.model_dir),
        train=not ridge,
        lora=cfg.finetune.strategy == "lora",
    )
    run_training(
        view,
        out,
        training_setup(cfg),
        init=init,
        origin="finetune",
        start=start,
        resume=Path(resume) if resume else None,
        callbacks=callbacks,
    )
    return out


def _print_report(report: SurgeryReport, cfg: Config, trainable: int, total: int) -> None:
    console = Console(stderr=True, highlight=False)
    console.print(
        f"[bold]fine-tuning[/bold] ({cfg.finetune.strategy}): {trainable:,} of {total:,} parameters train"
    )
    for line in report.lines():
        console.print("  " + line)
