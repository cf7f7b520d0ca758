"""The one training workflow: normaliser → static channels → net → Lightning → artifact.

:func:`run_training` is the only place that assembles a training run. Pre-training,
fine-tuning, scratch baselines, tuning folds, the curve, the demo and the benchmarks all
call it (through the commands of :mod:`climatune.workflows`). It reads the config
sections it needs, gathered in a :class:`TrainingSetup`, never the whole config.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.utils.deterministic
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from climatune.data.normalize import Normalizer
from climatune.data.samples import (
    fit_normalizer,
    normalization_mode,
    static_channels,
    static_record,
)
from climatune.data.settings import DataConfig, TaskConfig
from climatune.data.view import TaskView
from climatune.errors import ClimatuneError
from climatune.inference import TASK_KEYS, save_artifact, variable_records
from climatune.models.lora import merge_lora
from climatune.models.net import ClimateNet, build_net
from climatune.models.settings import ModelConfig
from climatune.training.callbacks import SampleLedger
from climatune.training.datamodule import ClimateDataModule
from climatune.training.objectives import check_training_task, random_crop, weighed_objectives
from climatune.training.resume import (
    MetricsHistory,
    StopOnSignal,
    completed_epoch,
    interruptible,
)
from climatune.training.scale import initialise_gaussian_head
from climatune.training.settings import OptimConfig, TrainerConfig
from climatune.training.task import ClimateTask, NonFiniteLoss
from climatune.utils.openmp import prefer_passive_openmp

__all__ = [
    "TrainingSetup",
    "Scratch",
    "FromArtifact",
    "run_training",
    "run_ensemble",
    "member_setup",
    "MemberInit",
    "new_net",
    "build_task",
    "residual_index",
    "export_model",
]


@dataclass(frozen=True)
class TrainingSetup:
    """The config sections a training run reads, and the resolved config it records.

    Parameters
    ----------
    model, optim, trainer
        The network, optimiser and Lightning trainer sections.
    data
        Its loader fields (batch size, workers, in-memory, shuffle buffer) and its
        ``path``, recorded as the artifact's provenance.
    task
        Its ``mask_ratio`` and ``mask_patch`` (the masks of a reconstruction task).
    seed
        Seeds the new weights, the sample order and the masks.
    record
        The resolved config as plain data, stored as the artifact's ``config`` (less the
        task settings that the artifact holds once, :data:`~climatune.inference.TASK_KEYS`).
    """

    model: ModelConfig
    optim: OptimConfig
    trainer: TrainerConfig
    data: DataConfig
    task: TaskConfig
    seed: int
    record: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Scratch:
    """Start from a freshly initialised network, seeded with ``TrainingSetup.seed``.

    ``normalizer``, when given, is already fitted on the view's training years (the
    benchmarks fit it once for several runs); otherwise it is fitted here.
    """

    normalizer: Normalizer | None = None


@dataclass(frozen=True)
class FromArtifact:
    """Start from a pre-trained network adapted to the view (:mod:`climatune.finetune`).

    Parameters
    ----------
    net
        The adapted network, its freezing already applied.
    normalizer
        The pre-trained statistics merged with this data's.
    parent
        The parent artifact's directory, recorded in the new artifact.
    train
        False when the head is already solved in closed form (``ridge_probe``): the
        network is exported without a Lightning fit.
    lora
        Fold the LoRA adapters into the weights before export.
    """

    net: ClimateNet
    normalizer: Normalizer
    parent: str
    train: bool = True
    lora: bool = False


def residual_index(view: TaskView, residual: bool) -> list[int]:
    """Per output, the input channel that is its residual base (-1 for none)."""
    if view.is_scalar:
        return [-1]
    return [view.inputs.index(t) if residual and t in view.inputs else -1 for t in view.targets]


def new_net(model: ModelConfig, view: TaskView, n_static: int, seed: int) -> ClimateNet:
    """A freshly initialised network for ``view``'s task, as ``model`` describes, drawn
    from ``seed``."""
    torch.manual_seed(seed)
    m = model
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
        distribution=m.head_distribution,
        **m.options,
    )


def _trainer(
    t: TrainerConfig,
    out: Path,
    callbacks: Sequence[Callback],
    *,
    logs: bool = True,
    resumed_step: int | None = None,
) -> pl.Trainer:
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


def build_task(setup: TrainingSetup, view: TaskView, net: ClimateNet) -> ClimateTask:
    """The Lightning task that trains ``net`` on ``view`` as ``setup`` says.

    Sets the network's residual connection for ``view``'s outputs (``setup.model.residual``);
    weighs ``setup.task.objectives`` and crops as ``setup.task.random_crop`` says
    (:mod:`climatune.training.objectives`).
    """
    names, static = static_channels(view)
    net.set_residual(residual_index(view, setup.model.residual))
    objectives, reconstruction = weighed_objectives(
        setup.task, view, net.backbone.out_channels, residual=setup.model.residual, seed=setup.seed
    )
    task = ClimateTask(
        net,
        torch.from_numpy(static),
        torch.from_numpy(view.weights().values.astype("float32")),
        lr=setup.optim.lr,
        weight_decay=setup.optim.weight_decay,
        warmup_fraction=setup.optim.warmup_fraction,
        backbone_lr_scale=setup.optim.backbone_lr_scale,
        seed=setup.seed,
        objectives=objectives,
        kind=view.kind,
        reconstruction=reconstruction,
        crop=random_crop(setup.task, view, setup.seed),
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


def _fit(
    setup: TrainingSetup,
    view: TaskView,
    normalizer: Normalizer,
    task: ClimateTask,
    out: Path,
    *,
    resume: Path | None,
    callbacks: Sequence[Callback],
    logs: bool,
) -> pl.Trainer:
    """Train ``task`` on ``view`` with Lightning; returns its trainer.

    The best checkpoint (lowest validation loss) is restored into the task at the end. A
    loss that turns non-finite stops training with :class:`NonFiniteLoss`; the last
    checkpoint, written at the end of the last good epoch, stays. SIGTERM or SIGINT stops
    it after the current batch with :class:`~climatune.errors.Interrupted`; a resumed run
    keeps the logs of the epochs its checkpoint holds.
    """
    data = ClimateDataModule(
        view,
        normalizer,
        batch_size=setup.data.batch_size,
        num_workers=setup.data.num_workers,
        seed=setup.seed,
        mask_ratio=setup.task.mask_ratio,
        mask_patch=setup.task.mask_patch,
        in_memory=setup.data.in_memory,
        shuffle_buffer_chunks=setup.data.shuffle_buffer_chunks,
        source_weights={s.name: s.weight for s in setup.data.sources or []} or None,
    )
    if setup.trainer.compile:
        task.net.compile()  # in place: parameter names, checkpoints and the artifact are unchanged
    pl.seed_everything(setup.seed, workers=True, verbose=False)
    ckpt, history, step = None, MetricsHistory(), None
    if resume is not None:
        ckpt = Path(resume) / "checkpoints" / "last.ckpt"
        if not ckpt.exists():
            raise ClimatuneError(f"cannot resume: {ckpt} does not exist")
        epoch, step = completed_epoch(ckpt)
        history = MetricsHistory(MetricsHistory.read(out, epoch))
    stop = StopOnSignal()
    trainer = _trainer(
        setup.trainer, out, [*callbacks, history, stop], logs=logs, resumed_step=step
    )
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
    return trainer


def export_model(
    model_dir: Path,
    setup: TrainingSetup,
    view: TaskView,
    normalizer: Normalizer,
    task: ClimateTask | Sequence[ClimateTask],
    *,
    parent: str | None = None,
    origin: str = "pretrain",
) -> Path:
    """Write the artifact of a trained task (weights + climatune.json).

    ``origin`` says how it was trained: ``pretrain``, ``scratch`` (a task network trained
    without pre-training, the baseline of a fine-tune) or ``finetune``. Several tasks are
    the members of an ensemble, written into one artifact.
    """
    tasks = list(task) if isinstance(task, Sequence) else [task]
    task = tasks[0]
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
        **static_record(view),
        "grid": {
            "lat": view.fields.lat.values.tolist(),
            "lon": view.fields.lon.values.tolist(),
            "calendar": str(view.fields.time.dt.calendar),
        },
        "normalization": normalizer.to_dict(),
        "config": {  # the task settings are stored once, under "task" above
            **setup.record,
            "task": {k: v for k, v in setup.record["task"].items() if k not in TASK_KEYS},
        },
        "provenance": {
            "data": (
                {s.name: s.path for s in setup.data.sources}
                if setup.data.sources
                else setup.data.path
            ),
            "blocks": {k: list(v) for k, v in view.blocks.items()},
            "n_samples": view.n_samples(),
            "time_range": [str(view.fields.time.values[0]), str(view.fields.time.values[-1])],
        },
        "parent": parent,
        "origin": origin,
    }
    nets = [t.net for t in tasks]
    return save_artifact(model_dir, nets, meta, task.static, normalizer.climatology_)


def run_training(
    view: TaskView,
    out: Path,
    setup: TrainingSetup,
    *,
    init: Scratch | FromArtifact,
    origin: str,
    start: Callable[[], object] | None = None,
    resume: Path | None = None,
    callbacks: Sequence[Callback] = (),
    logs: bool = True,
) -> tuple[ClimateTask, pl.Trainer | None]:
    """Train a network on ``view`` into the run folder ``out`` and write ``out/model``.

    Parameters
    ----------
    view
        The task in xarray.
    out
        The run folder: checkpoints, logs and the artifact ``model/``.
    setup
        The config sections the run reads.
    init
        :class:`Scratch` (a new network) or :class:`FromArtifact` (an adapted one).
    origin
        How the artifact was trained (``pretrain``, ``scratch``, ``finetune``), recorded in it.
    start
        Called once the statistics and the network are ready, before anything is written:
        the command claims its run folder and writes its ``config.yaml`` here.
    resume
        A run folder whose ``checkpoints/last.ckpt`` training continues from.
    callbacks
        Extra Lightning callbacks (a freezing schedule, a benchmark's timer).
    logs
        Write CSV and TensorBoard logs under ``out/logs``.

    Returns
    -------
    tuple
        The trained task and its trainer (None when ``init`` is not trained).
    """
    check_training_task(setup.task, view)
    normalizer, net = _initial(setup, view, init)
    if start is not None:
        start()
    task = build_task(setup, view, net)
    initialise_gaussian_head(task, view, normalizer, mask_ratio=setup.task.mask_ratio)
    parent = init.parent if isinstance(init, FromArtifact) else None
    if isinstance(init, FromArtifact) and not init.train:
        export_model(out / "model", setup, view, normalizer, task, parent=parent, origin=origin)
        return task, None
    trainer = _fit(
        setup, view, normalizer, task, out, resume=resume, callbacks=callbacks, logs=logs
    )
    if isinstance(init, FromArtifact) and init.lora:
        task.net = merge_lora(task.net)
    if trainer.is_global_zero:
        export_model(out / "model", setup, view, normalizer, task, parent=parent, origin=origin)
    return task, trainer


def _initial(
    setup: TrainingSetup, view: TaskView, init: Scratch | FromArtifact
) -> tuple[Normalizer, ClimateNet]:
    """The statistics and the network a run starts from."""
    if isinstance(init, Scratch):
        normalizer = init.normalizer or fit_normalizer(
            view,
            normalization_mode(view, setup.data.normalization),
            per_source=setup.data.source_normalization == "per_source",
        )
        names, _ = static_channels(view)
        return normalizer, new_net(setup.model, view, len(names), setup.seed)
    return init.normalizer, init.net


def member_setup(setup: TrainingSetup, k: int) -> TrainingSetup:
    """Member ``k``'s setup: the same sections, seeded with ``seed + k``."""
    return replace(setup, seed=setup.seed + k)


#: Member k's start from its setup (seeded ``seed + k``): where it starts and its own
#: extra callbacks (a freezing schedule holds the state of one network).
MemberInit = Callable[[int, TrainingSetup], tuple[Scratch | FromArtifact, Sequence[Callback]]]


def run_ensemble(
    view: TaskView,
    out: Path,
    setup: TrainingSetup,
    *,
    members: int,
    member_init: MemberInit,
    origin: str,
    start: Callable[[], object] | None = None,
    logs: bool = True,
) -> list[ClimateTask]:
    """Train a deep ensemble on ``view`` and write its one artifact ``out/model``.

    Member k is trained as :func:`run_training` trains one network, from
    ``member_init(k, member_setup(setup, k))``, with seed ``setup.seed + k`` (its new
    weights, sample order and masks), in ``out/members/k`` (its checkpoints and logs).
    A scratch member without statistics uses member 0's, so that all share one
    normaliser. ``start`` is called once, before anything is written.

    Returns
    -------
    list of ClimateTask
        The trained members.
    """
    check_training_task(setup.task, view)
    tasks: list[ClimateTask] = []
    shared: Normalizer | None = None
    global_zero, parent = True, None
    for k in range(members):
        mine = member_setup(setup, k)
        init, callbacks = member_init(k, mine)
        if isinstance(init, Scratch) and init.normalizer is None and shared is not None:
            init = Scratch(shared)
        normalizer, net = _initial(mine, view, init)
        shared = shared or normalizer
        if k == 0 and start is not None:
            start()
        task = build_task(mine, view, net)
        initialise_gaussian_head(task, view, normalizer, mask_ratio=mine.task.mask_ratio)
        if not isinstance(init, FromArtifact) or init.train:
            where = out / "members" / str(k)
            trainer = _fit(
                mine, view, normalizer, task, where, resume=None, callbacks=callbacks, logs=logs
            )
            global_zero = trainer.is_global_zero
        if isinstance(init, FromArtifact):
            parent = init.parent
            if init.lora:
                task.net = merge_lora(task.net)
        tasks.append(task)
    assert shared is not None
    if global_zero:
        export_model(out / "model", setup, view, shared, tasks, parent=parent, origin=origin)
    return tasks
