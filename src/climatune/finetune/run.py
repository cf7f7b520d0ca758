"""``climatune finetune``: adapt a pre-trained artifact to a new task and train it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from rich.console import Console

from climatune.config import Config, config_inputs
from climatune.data.normalize import Normalizer
from climatune.data.samples import fit_normalizer, static_channels
from climatune.data.view import TaskView, build_view
from climatune.errors import ClimatuneError
from climatune.finetune.freezing import apply_strategy, count_trainable
from climatune.finetune.probe import fit_ridge_probe
from climatune.finetune.surgery import SurgeryReport, adapt_network
from climatune.inference import LoadedModel, load_model, model_paths
from climatune.training.run import (
    build_task,
    default_run_dir,
    export_model,
    fit_task,
    resume_checkpoint,
    write_config,
)
from climatune.utils.atomic import prepare_output_dir, releases_outputs

__all__ = ["finetune", "prepare_finetune", "merged_normalizer"]


def merged_normalizer(
    parent: LoadedModel, view: TaskView, cfg: Config
) -> tuple[Normalizer, list[str]]:
    """Pre-trained statistics, refitted on this data's training years where the policy says.

    New variables are always fitted on this data. Returns the normaliser and report lines.

    Raises
    ------
    ClimatuneError
        When the policy is ``keep`` for a variable whose data have clearly shifted.
    """
    fresh, old = fit_normalizer(view), parent.normalizer
    policy = cfg.finetune.normalization
    kept, refit, notes = [], [], []
    for name in [n for n in fresh.mean_ if n in old.mean_]:
        choice = policy.variables.get(name, policy.default)
        shift = old.shift(fresh, name)
        if shift and choice == "keep":
            raise ClimatuneError(
                f"'{name}' here is not distributed like the pre-trained model's data ({shift}); "
                f"set finetune.normalization.variables.{name}=refit (or auto), or force_keep "
                "if the shift is meant to be read as an anomaly"
            )
        (refit if choice == "refit" or (choice == "auto" and shift) else kept).append(name)
        if shift:
            done = "refitted" if name in refit else f"kept ({choice})"
            notes.append(f"statistics of {name} {done}: {shift}")
    fitted = [n for n in fresh.mean_ if n not in old.mean_]
    lines = [
        f"statistics:     kept {', '.join(kept) or '-'}; refitted {', '.join(refit) or '-'}"
        + (f"; fitted {', '.join(fitted)} (new)" if fitted else ""),
        *notes,
    ]
    return old.merge(fresh, refit), lines


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Draw from torch's CPU generator seeded with ``seed``; the global state is restored."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def prepare_finetune(cfg: Config, source: str | Path, view: TaskView | None = None):
    """Load the parent, build the view, adapt the network; returns everything to train it.

    New weights (head, stem variables, static channels) are drawn from ``cfg.seed``.
    """
    parent = load_model(source)
    view = view if view is not None else build_view(cfg.data, cfg.task)
    names, _ = static_channels(view)
    net = parent.net.train()
    units = {n: str(view.fields[n].attrs.get("units", "")) for n in view.inputs}
    with _seeded(cfg.seed):
        report = adapt_network(net, parent.meta, view, len(names), units, cfg.model.head)
    normalizer, lines = merged_normalizer(parent, view, cfg)
    report.notes.extend(lines)
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
    if resume is not None and cfg.finetune.strategy == "ridge_probe":
        raise ClimatuneError(
            "cannot resume a ridge_probe run: its head is solved in one step, with no epochs "
            "to continue; run it again (--overwrite replaces the earlier run)"
        )
    claim = {
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
    with _seeded(cfg.seed):  # LoRA adapters start from the seed, too
        net, callbacks = apply_strategy(net, cfg.finetune)
    if cfg.finetune.strategy == "ridge_probe":
        task = build_task(cfg, view, net)
        probe = fit_ridge_probe(
            task.net, view, normalizer, task.static, folds=cfg.finetune.ridge_folds
        )
        report.new_head = probe.describe()
    trainable, total = count_trainable(net)
    out = prepare_output_dir(out, **claim)  # created only once the inputs are known to be good
    if not quiet:
        _print_report(report, cfg, trainable, total)
    write_config(out, cfg)
    if cfg.finetune.strategy == "ridge_probe":
        export_model(out / "model", cfg, view, normalizer, task, parent=str(parent.model_dir))
        return out
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
