"""Resuming and interrupting training runs without losing anything.

- :func:`check_resume_config`: ``--resume`` with a config that would train a different
  network (width, variables, task, strategy, ...) is refused before anything is written;
  only the budget (epochs, steps, patience) and the hardware may change.
- :class:`MetricsHistory`: a resumed run keeps the metric rows of the epochs its
  checkpoint holds, so ``logs/metrics.csv`` covers every epoch once, and TensorBoard
  drops the events of the epoch that is trained again.
- :func:`interruptible`: SIGTERM and Ctrl-C stop training after the current batch with
  :class:`~climatune.errors.Interrupted`; ``checkpoints/last.ckpt`` holds the last completed epoch, so a
  resumed run ends with the weights of an uninterrupted one.
"""

from __future__ import annotations

import csv
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import yaml
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from pydantic import ValidationError

from climatune.config import Config
from climatune.errors import ClimatuneError, Interrupted

__all__ = [
    "check_resume_config",
    "MetricsHistory",
    "interruptible",
    "StopOnSignal",
    "completed_epoch",
]

# keys a resumed run may change: how long it trains and on what hardware, not what it trains
BUDGET_KEYS = frozenset(
    f"trainer.{k}"
    for k in (
        "max_epochs",
        "max_steps",
        "patience",
        "accelerator",
        "devices",
        "strategy",
        "num_nodes",
        "log_every_n_steps",
        "progress_bar",
        "record_samples",
        "compile",
    )
) | {"data.num_workers", "data.in_memory"}


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flat(value, f"{prefix}{key}."))
    return {k.rstrip("."): v for k, v in out.items()}


def _as_read_now(saved: Any) -> dict[str, Any]:
    """A saved config as this version resolves it (older keys migrated), else as written."""
    if not isinstance(saved, dict):
        return {}
    try:
        return Config.model_validate(saved).model_dump(mode="json")
    except ValidationError:
        return saved


def check_resume_config(run: Path, cfg: Config) -> None:
    """Refuse to resume ``run`` with a config that trains something else than it did.

    ``run/config.yaml`` (the resolved config the run was started with) is compared with
    ``cfg``, key by key; keys in :data:`BUDGET_KEYS` may differ. A run without a
    ``config.yaml`` (from before it was written) is not checked.

    Raises
    ------
    ClimatuneError
        Naming every key that differs.
    """
    path = Path(run) / "config.yaml"
    if not path.is_file():
        return
    try:
        saved = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ClimatuneError(f"cannot resume {run}: {path} does not read ({exc})") from exc
    old = _flat(_as_read_now(saved))
    new = _flat(cfg.model_dump(mode="json"))
    differ = sorted(
        k for k in old.keys() | new.keys() if k not in BUDGET_KEYS and old.get(k) != new.get(k)
    )
    if differ:
        shown = ", ".join(f"{k} ({old.get(k)!r} -> {new.get(k)!r})" for k in differ[:8])
        more = f" and {len(differ) - 8} more" if len(differ) > 8 else ""
        raise ClimatuneError(
            f"cannot resume {run}: the config differs from the one it was started with in "
            f"{shown}{more}; only the budget (trainer.max_epochs, trainer.max_steps, "
            "trainer.patience) and the hardware may change; use the run's config.yaml or "
            "start a new run"
        )


class MetricsHistory(Callback):
    """Keep a resumed run's earlier rows of ``logs/metrics.csv``; flush logs every epoch.

    Lightning's CSVLogger deletes ``metrics.csv`` when it starts. Given the rows of the
    epochs up to ``epoch`` (the last one the resumed checkpoint completed), this writes
    them back before training continues; rows of a later, interrupted epoch are dropped
    because that epoch is trained again. Flushing the loggers at each validation end and
    epoch start keeps what a killed process logged on disk.
    """

    def __init__(self, rows: list[dict[str, str]] | None = None) -> None:
        self.rows = rows or []

    @staticmethod
    def read(run: Path, epoch: int) -> list[dict[str, str]]:
        """The rows of ``run/logs/metrics.csv`` whose epoch is at most ``epoch``."""
        path = Path(run) / "logs" / "metrics.csv"
        if not path.is_file():
            return []
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        return [r for r in rows if r.get("epoch") and float(r["epoch"]) <= epoch]

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not self.rows or not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if isinstance(logger, CSVLogger):
                writer = logger.experiment  # created (and its old file deleted) by now
                keys = sorted(set().union(*self.rows))
                with open(writer.metrics_file_path, "w", newline="") as fh:
                    out = csv.DictWriter(fh, fieldnames=keys)
                    out.writeheader()
                    out.writerows(self.rows)
                writer.metrics_keys = keys

    def _flush(self, trainer: pl.Trainer) -> None:
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.save()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush(trainer)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush(trainer)


class StopOnSignal(Callback):
    """Raise ``_Stop`` at the end of the batch during which a signal came (see
    :func:`interruptible`)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def _check(self) -> None:
        if self.signum is not None:
            raise _Stop(self.signum)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._check()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *a) -> None:
        self._check()


class _Stop(Exception):
    def __init__(self, signum: int) -> None:
        self.signum = signum


@contextmanager
def interruptible(stop: StopOnSignal, out: Path) -> Iterator[None]:
    """Turn SIGTERM and SIGINT during the fit of a trainer holding ``stop`` into
    :class:`~climatune.errors.Interrupted`, naming ``out``'s last checkpoint.

    Handlers are installed only in the main thread and not under SLURM, where Lightning's
    own (auto-requeue on the requeue signal, SIGTERM bypass) stay in charge; Lightning's
    SIGTERM stop is reported the same way. A second Ctrl-C stops at once, as Ctrl-C does.
    """
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    def handler(signum: int, frame: Any) -> None:
        if stop.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.signum = signum

    ours = threading.current_thread() is threading.main_thread() and not SLURMEnvironment.detect()
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)} if ours else {}
    for s in before:
        signal.signal(s, handler)
    try:
        yield
    except (_Stop, SIGTERMException) as exc:
        signum = exc.signum if isinstance(exc, _Stop) else signal.SIGTERM
        last = out / "checkpoints" / "last.ckpt"
        kept = last if last.is_file() else None
        epoch = completed_epoch(last)[0] if kept else None
        raise Interrupted(signum, out, kept, epoch) from None
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def completed_epoch(ckpt: Path) -> tuple[int, int]:
    """``(epoch, global_step)`` of a Lightning checkpoint: the last epoch it completed (from
    0) and the optimiser steps taken by then."""
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    return int(state["epoch"]), int(state["global_step"])
