"""Pre-training runs: config → data → network → Lightning → artifact.

:func:`fit_task` is the one training entry point; pre-training, fine-tuning, the
data-efficiency curve and tuning all call it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.utils.deterministic
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from climatune.config import Config, config_inputs, dump_config
from climatune.data.normalize import Normalizer
from climatune.data.samples import fit_normalizer, static_channels
from climatune.data.view import TaskView, build_view
from climatune.errors import ClimatuneError
from climatune.inference import TASK_KEYS, save_artifact, variable_records
from climatune.models.net import ClimateNet
from climatune.training.callbacks import SampleLedger
from climatune.training.datamodule import ClimateDataModule
from climatune.training.resume import (
    MetricsHistory,
    StopOnSignal,
    check_resume_config,
    completed_epoch,
    interruptible,
)
from climatune.training.task import ClimateTask, NonFiniteLoss
from climatune.utils.atomic import (
    atomic_path,
    other_rank,
    prepare_output_dir,
    releases_outputs,
)
from climatune.utils.openmp import prefer_passive_openmp

__all__ = [
    "pretrain",
    "new_net",
    "fit_task",
    "build_task",
    "residual_index",
    "export_model",
    "default_run_dir",
    "resume_checkpoint",
]


def default_run_dir(cfg: Config, prefix: str) -> Path:
    return Path("runs") / f"{prefix}-{cfg.task.kind}"


def residual_index(view: TaskView, residual: bool) -> list[int]:
    """Per output, the input channel that is its residual base (-1 for none)."""
    if view.is_scalar:
        return [-1]
    return [view.inputs.index(t) if residual and t in view.inputs else -1 for t in view.targets]


def new_net(cfg: Config, view: TaskView, n_static: int) -> torch.nn.Module:
    """A freshly initialised network for ``view``'s task, as ``cfg.model`` describes."""
    from climatune.models.net import build_net

    torch.manual_seed(cfg.seed)
    m = cfg.model
    return build_net(
        m.backbone,
        variables=view.inputs,
        history=view.history,
        n_static=n_static,
        n_out=len(view.targets),
        head="scalar" if view.is_scalar else "field",
        periodic_lon=view.periodic_lon,
        grid_shape=(view.fields.lat.size, view.fields.lon.size),
        head_kwargs=m.head,
        **m.options,
    )


def _trainer(
    cfg: Config,
    out: Path,
    callbacks: Sequence[Callback],
    *,
    logs: bool = True,
    resumed_step: int | None = None,
) -> pl.Trainer:
    t = cfg.trainer
    callbacks = [
        EarlyStopping("val_loss", patience=t.patience, mode="min", check_on_train_epoch_end=False),
        ModelCheckpoint(
            dirpath=out / "checkpoints",
            filename="best",
            monitor="val_loss",
            save_last=True,
            save_top_k=1,
            mode="min",
            enable_version_counter=False,
        ),
        *callbacks,
    ]
    if t.progress_bar:
        callbacks.append(RichProgressBar())
    if t.record_samples:
        callbacks.append(SampleLedger(out))
    loggers: Any = False
    if logs:
        loggers = [
            CSVLogger(out, name="logs", version=""),
            # events of an interrupted epoch, trained again after a resume, are dropped
            TensorBoardLogger(out, name="logs", version="tb", purge_step=resumed_step),
        ]
    cpu = t.accelerator == "cpu" or (t.accelerator == "auto" and not torch.cuda.is_available())
    prefer_passive_openmp()  # inherited by the DDP worker processes the trainer starts
    return pl.Trainer(
        max_epochs=t.max_epochs,
        max_steps=t.max_steps,
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=t.strategy,
        num_nodes=t.num_nodes,
        precision=t.precision,
        gradient_clip_val=t.gradient_clip_val or None,
        log_every_n_steps=t.log_every_n_steps,
        callbacks=callbacks,
        logger=loggers,
        enable_progress_bar=t.progress_bar,
        enable_model_summary=False,
        deterministic=cpu,
        default_root_dir=out,
        limit_train_batches=t.limit_train_batches,
        num_sanity_val_steps=0,
    )


def build_task(cfg: Config, view: TaskView, net: ClimateNet) -> ClimateTask:
    """The Lightning task that trains ``net`` on ``view`` as ``cfg`` says.

    Sets the network's residual connection for ``view``'s outputs (``cfg.model.residual``).
    """
    names, static = static_channels(view)
    net.set_residual(residual_index(view, cfg.model.residual))
    task = ClimateTask(
        net,
        torch.from_numpy(static),
        torch.from_numpy(view.weights().values.astype("float32")),
        lr=cfg.optim.lr,
        weight_decay=cfg.optim.weight_decay,
        warmup_fraction=cfg.optim.warmup_fraction,
        backbone_lr_scale=cfg.optim.backbone_lr_scale,
        seed=cfg.seed,
    )
    task.static_names = names
    return task


@contextmanager
def _no_nan_fill() -> Iterator[None]:
    """Deterministic mode without filling every new tensor with NaN.

    ``torch.use_deterministic_algorithms`` (on for CPU training) also fills uninitialised
    memory, a debugging aid that costs about 10 % of a CPU training step (``BENCHMARKS.md``)
    and changes no result of correct kernels.
    """
    before = torch.utils.deterministic.fill_uninitialized_memory
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.utils.deterministic.fill_uninitialized_memory = before


def fit_task(
    cfg: Config,
    view: TaskView,
    normalizer: Normalizer,
    net: torch.nn.Module,
    out: Path,
    *,
    resume: Path | None = None,
    callbacks: Sequence[Callback] = (),
    logs: bool = True,
) -> tuple[ClimateTask, pl.Trainer]:
    """Train ``net`` on ``view`` with Lightning; returns the task and its trainer.

    The best checkpoint (lowest validation loss) is restored into ``net`` at the end. A
    loss that turns non-finite stops training with :class:`NonFiniteLoss`; the last
    checkpoint, written at the end of the last good epoch, stays. SIGTERM or SIGINT stops
    it after the current batch with :class:`~climatune.errors.Interrupted`; a resumed run
    keeps the logs of the epochs its checkpoint holds.
    """
    task = build_task(cfg, view, net)
    data = ClimateDataModule(
        view,
        normalizer,
        batch_size=cfg.data.batch_size,
        num_workers=cfg.data.num_workers,
        seed=cfg.seed,
        mask_ratio=cfg.task.mask_ratio,
        mask_patch=cfg.task.mask_patch,
        in_memory=cfg.data.in_memory,
        shuffle_buffer_chunks=cfg.data.shuffle_buffer_chunks,
    )
    if cfg.trainer.compile:
        net.compile()  # in place: parameter names, checkpoints and the artifact are unchanged
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    ckpt, history, step = None, MetricsHistory(), None
    if resume is not None:
        ckpt = Path(resume) / "checkpoints" / "last.ckpt"
        if not ckpt.exists():
            raise ClimatuneError(f"cannot resume: {ckpt} does not exist")
        epoch, step = completed_epoch(ckpt)
        history = MetricsHistory(MetricsHistory.read(out, epoch))
    stop = StopOnSignal()
    trainer = _trainer(cfg, out, [*callbacks, history, stop], logs=logs, resumed_step=step)
    with _no_nan_fill(), interruptible(stop, out):
        try:
            trainer.fit(task, datamodule=data, ckpt_path=ckpt, weights_only=True)
        except NonFiniteLoss as exc:
            last = out / "checkpoints" / "last.ckpt"
            kept = (
                f"the last good checkpoint is kept in {last}"
                if last.exists()
                else "no epoch had finished, so there is no checkpoint"
            )
            raise NonFiniteLoss(f"{exc}; {kept}; no model was written") from exc
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if best and os.path.exists(best):
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        task.load_state_dict(state, strict=False)
    return task, trainer


def export_model(
    model_dir: Path,
    cfg: Config,
    view: TaskView,
    normalizer: Normalizer,
    task: ClimateTask,
    *,
    parent: str | None = None,
    origin: str = "pretrain",
) -> Path:
    """Write the artifact of a trained task (weights + climatune.json).

    ``origin`` says how it was trained: ``pretrain``, ``scratch`` (a task network trained
    without pre-training, the baseline of a fine-tune) or ``finetune``.
    """
    outputs_units = (
        {view.targets[0]: str(view.index.attrs.get("units", ""))} if view.is_scalar else {}
    )
    meta = {
        "task": {
            "kind": view.kind,
            "history": view.history,
            "lead": view.lead,
            "factor": view.factor,
        },
        "inputs": variable_records(view.fields, view.inputs, normalizer.units_),
        "outputs": variable_records(
            view.index.to_dataset(name=view.targets[0]) if view.is_scalar else view.fields,
            view.targets,
            {**normalizer.units_, **outputs_units},
        ),
        "static": list(getattr(task, "static_names", [])),
        "grid": {
            "lat": view.fields.lat.values.tolist(),
            "lon": view.fields.lon.values.tolist(),
            "calendar": str(view.fields.time.dt.calendar),
        },
        "normalization": normalizer.to_dict(),
        "config": cfg.model_dump(mode="json", exclude={"task": set(TASK_KEYS)}),
        "provenance": {
            "data": cfg.data.path,
            "blocks": {k: list(v) for k, v in view.blocks.items()},
            "n_samples": view.n_samples(),
            "time_range": [str(view.fields.time.values[0]), str(view.fields.time.values[-1])],
        },
        "parent": parent,
        "origin": origin,
    }
    return save_artifact(model_dir, task.net, meta, task.static)


def write_config(out: Path, cfg: Config) -> None:
    """Write the resolved config into the run (rank 0 only: the run folder is its own)."""
    if other_rank():
        return
    with atomic_path(out / "config.yaml") as tmp:
        tmp.write_text(dump_config(cfg))


def resume_checkpoint(resume: str | Path | None, cfg: Config) -> Path | None:
    """``RUN/checkpoints/last.ckpt`` of the run to resume, checked to load without unpickling code.

    A checkpoint that does not load with ``torch.load(weights_only=True)`` (a pickle that
    would run code, a truncated or foreign file), or a ``cfg`` that differs from the run's
    ``config.yaml`` in more than the budget, is refused with a ClimatuneError.
    """
    if resume is None:
        return None
    check_resume_config(Path(resume), cfg)
    ckpt = Path(resume) / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise ClimatuneError(f"cannot resume: {ckpt} does not exist")
    try:
        torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as exc:  # whatever a bad file raises, it is the file's fault
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClimatuneError(
            f"cannot resume from {ckpt}: it does not load as a safe checkpoint ({reason}); "
            "refusing to load it, start a new run instead"
        ) from exc
    return ckpt


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

    ``origin`` is recorded in the artifact and names the command in ``out``'s stamp:
    ``scratch`` for the baseline of a fine-tune, ``pretrain`` for ``climatune pretrain``.
    ``overwrite`` replaces an earlier run of the same kind at ``out``.
    """
    normalizer = fit_normalizer(view)
    names, _ = static_channels(view)
    net = new_net(cfg, view, len(names))
    out = prepare_output_dir(  # created only once the inputs are known to be good
        out,
        command=origin,
        inputs=config_inputs(cfg),
        overwrite=overwrite,
        resume=resume is not None,
    )
    write_config(out, cfg)
    task, trainer = fit_task(cfg, view, normalizer, net, out, resume=resume, logs=logs)
    if trainer.is_global_zero:
        export_model(out / "model", cfg, view, normalizer, task, origin=origin)
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
    resume_checkpoint(resume, cfg)
    return train_scratch(
        cfg,
        build_view(cfg.data, cfg.task),
        out,
        resume=Path(resume) if resume else None,
        origin="pretrain",
        overwrite=overwrite,
    )
