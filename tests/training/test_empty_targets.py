"""Batches whose targets are all missing have no loss: they count in no logged mean and
move no weight (no optimiser step: Adam's momentum and weight decay would)."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from climatune.data.samples import TaskSamples, fit_normalizer
from climatune.data.view import build_view
from climatune.errors import ClimatuneError
from climatune.testing import tiny_config
from climatune.training.losses import scored_cells
from climatune.training.workflow import build_task, new_net
from climatune.workflows.runs import training_setup


def _task_and_batches(archive):
    cfg = tiny_config(archive, "data.normalization=global", "optim.weight_decay=0.5")
    view = build_view(cfg.data, cfg.task)
    task = build_task(training_setup(cfg), view, new_net(cfg.model, view, 5, cfg.seed))
    samples = TaskSamples(view, "train", fit_normalizer(view))
    batch = {
        k: torch.stack([samples[i][k] for i in range(4)]) for k in ("fields", "target", "anchor")
    }
    empty = dict(batch, target=torch.full_like(batch["target"], torch.nan))
    return task, batch, empty


class _Losses(pl.Callback):
    """Each training step's loss as the task returned it (None: skipped)."""

    def __init__(self) -> None:
        self.seen: list[float | None] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen.append(None if not outputs else float(outputs["loss"]))


def _trainer(**options) -> pl.Trainer:
    """One quiet epoch: no logger, checkpoint, progress bar or summary."""
    quiet = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False}
    return pl.Trainer(max_epochs=1, enable_model_summary=False, **quiet, **options)


def _fit(task, batches):
    losses = _Losses()
    trainer = _trainer(callbacks=[losses])
    trainer.fit(task, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    return trainer, losses.seen


def test_a_batch_without_target_has_no_loss(archive):
    task, batch, empty = _task_and_batches(archive)
    assert scored_cells(empty["target"], task.weight) == 0
    assert scored_cells(batch["target"], task.weight) > 0
    assert task.losses(empty, "val") == {}
    assert task._step(empty, "val") is None
    assert float(task._step(batch, "val")) > 0


@pytest.mark.filterwarnings("ignore:.*returned `None`")
def test_batches_without_target_move_no_weight_and_count_in_no_mean(archive):
    task, batch, empty = _task_and_batches(archive)
    before = {k: v.clone() for k, v in task.net.state_dict().items()}
    trainer, seen = _fit(task, [empty, empty])
    assert seen == [None, None]
    after = task.net.state_dict()
    # weight decay 0.5 would have shrunk every weight on a zero-loss step
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert "train_loss_epoch" not in trainer.callback_metrics

    task, batch, empty = _task_and_batches(archive)
    first = float(task._step(batch, "val"))  # the loss of the one real batch, before any step
    trainer, seen = _fit(task, [empty, batch, empty])
    assert seen[0] is None and seen[2] is None
    assert seen[1] == pytest.approx(first, rel=1e-5)
    # the epoch mean is the real batch's loss, not a third of it
    assert float(trainer.callback_metrics["train_loss_epoch"]) == pytest.approx(first, rel=1e-5)


def test_validation_years_without_any_target_are_refused(archive):
    task, batch, empty = _task_and_batches(archive)
    trainer = _trainer(num_sanity_val_steps=0)
    loader = torch.utils.data.DataLoader
    with pytest.raises(ClimatuneError, match="no validation sample has a target value"):
        trainer.fit(
            task,
            train_dataloaders=loader([batch], batch_size=None),
            val_dataloaders=loader([empty, empty], batch_size=None),
        )
