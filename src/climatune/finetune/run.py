"""``climatune finetune``: adapt a pre-trained artifact to a new task and train it."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from climatune.config import Config
from climatune.data.normalize import Normalizer
from climatune.data.samples import fit_normalizer, static_channels
from climatune.data.view import TaskView, build_view, config_inputs
from climatune.finetune.artifact import LoadedModel, load_model, model_paths
from climatune.finetune.freezing import apply_strategy, count_trainable
from climatune.finetune.surgery import SurgeryReport, adapt_network
from climatune.training.run import (
    default_run_dir,
    export_model,
    fit_task,
    resume_checkpoint,
    write_config,
)
from climatune.utils.atomic import prepare_output_dir, releases_outputs

__all__ = ["finetune", "prepare_finetune", "merged_normalizer"]


def merged_normalizer(parent: LoadedModel, view: TaskView, cfg: Config) -> Normalizer:
    """Pre-trained statistics, with ``refit`` variables (and new ones) refitted on this data."""
    fresh = fit_normalizer(view)
    policy = cfg.finetune.normalization
    refit = [n for n in fresh.mean_ if policy.variables.get(n, policy.default) == "refit"]
    return parent.normalizer.merge(fresh, refit)


def prepare_finetune(cfg: Config, source: str | Path, view: TaskView | None = None):
    """Load the parent, build the view, adapt the network; returns everything to train it."""
    parent = load_model(source)
    view = view if view is not None else build_view(cfg)
    names, _ = static_channels(view)
    net = parent.net.train()
    units = {n: str(view.fields[n].attrs.get("units", "")) for n in view.inputs}
    report = adapt_network(net, parent.meta, view, len(names), units)
    return parent, view, merged_normalizer(parent, view, cfg), net, report


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
    claim = {
        "command": "finetune",
        "inputs": [*model_paths(source), *config_inputs(cfg)],
        "overwrite": overwrite,
        "resume": resume is not None,
    }
    out = prepare_output_dir(
        resume or out or default_run_dir(cfg, "finetune"), create=False, **claim
    )
    resume_checkpoint(resume)
    parent, view, normalizer, net, report = prepare_finetune(cfg, source, view)
    net, callbacks = apply_strategy(net, cfg.finetune)
    trainable, total = count_trainable(net)
    out = prepare_output_dir(out, **claim)  # created only once the inputs are known to be good
    if not quiet:
        _print_report(report, cfg, trainable, total)
    write_config(out, cfg)
    task, trainer = fit_task(
        cfg,
        view,
        normalizer,
        net,
        out,
        resume=Path(resume) if resume else None,
        callbacks=callbacks,
    )
    if cfg.finetune.strategy == "lora":
        from climatune.models.lora import merge_lora

        task.net = merge_lora(task.net)
    if trainer.is_global_zero:
        export_model(
            out / "model",
            cfg,
            view,
            normalizer,
            task,
            parent=str(parent.model_dir),
            origin="finetune",
        )
    return out


def _print_report(report: SurgeryReport, cfg: Config, trainable: int, total: int) -> None:
    console = Console(stderr=True, highlight=False)
    console.print(
        f"[bold]fine-tuning[/bold] ({cfg.finetune.strategy}): {trainable:,} of {total:,} parameters train"
    )
    for line in report.lines():
        console.print("  " + line)
