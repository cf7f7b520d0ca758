"""Shared pieces of the benchmarks: sizes, data stores, rows, timing and training helpers.

Every figure the benchmarks judge is a ratio of two rates measured in the same run, in
interleaved rounds (A, B, A, B, ...), so that a busy machine slows both alike.
"""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.utils.deterministic

from climatune.config import Config, load_config
from climatune.data.normalize import Normalizer
from climatune.data.samples import static_channels
from climatune.data.synthetic import write_synthetic
from climatune.data.view import TaskView
from climatune.training.datamodule import ClimateDataModule
from climatune.training.losses import weighted_mse
from climatune.training.task import ClimateTask
from climatune.training.workflow import build_task, new_net
from climatune.workflows.runs import training_setup

__all__ = [
    "ROOT",
    "DATA",
    "Sizes",
    "FULL",
    "QUICK",
    "row",
    "median",
    "interleave",
    "synthetic_store",
    "bench_config",
    "new_task",
    "StepTimer",
    "bare_rate",
    "training_flops",
    "matmul_flops",
]

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "_data"


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark is: ``FULL`` for ``make bench``, ``QUICK`` for ``bench-quick``."""

    quick: bool
    train_grid: tuple[int, int]  # grid of the training benchmarks (model default unet)
    train_years: int  # monthly years of the training store
    loader_years: int  # monthly years of the 64x128 loader store (chunks of 12 steps)
    nc_files: int  # NetCDF files the loader store is split into
    batch: int
    warmup: int  # steps not timed
    steps: int  # steps timed per round
    rounds: int
    naive_samples: int
    mm_size: int
    memory_grid: tuple[int, int]
    memory_years: tuple[int, ...]  # daily stores: about 1 GB and 6 GB in full
    memory_steps: int
    memory_drain_chunks: int  # chunks streamed after training, to pass several buffers
    ddp_steps: int


FULL = Sizes(
    quick=False,
    train_grid=(64, 128),
    train_years=60,
    loader_years=200,
    nc_files=10,
    batch=16,
    warmup=2,
    steps=5,
    rounds=2,
    naive_samples=60,
    mm_size=2048,
    memory_grid=(64, 128),
    memory_years=(21, 125),
    memory_steps=4,
    memory_drain_chunks=10,
    ddp_steps=12,
)
QUICK = Sizes(
    quick=True,
    train_grid=(32, 64),
    train_years=30,
    loader_years=40,
    nc_files=4,
    batch=16,
    warmup=2,
    steps=4,
    rounds=1,
    naive_samples=20,
    mm_size=1024,
    memory_grid=(32, 64),
    memory_years=(6, 18),
    memory_steps=1,
    memory_drain_chunks=6,
    ddp_steps=4,
)


def row(
    name: str, value: float | None, unit: str, target: float | None = None, better: str = "higher"
) -> dict[str, Any]:
    """One result: ``value`` against ``target`` (``None``: reported, not judged)."""
    return {"name": name, "value": value, "target": target, "better": better, "unit": unit}


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def interleave(fns: dict[str, Callable[[int], Any]], rounds: int) -> dict[str, list[Any]]:
    """Call each function once per round, in turn; ``{name: [value per round]}``.

    Each round starts one function further on, so that none always runs first.
    """
    names = list(fns)
    out: dict[str, list[Any]] = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            out[name].append(fns[name](r))
    return out


def synthetic_store(freq: str, years: int, grid: tuple[int, int]) -> Path:
    """A synthetic Zarr store under ``bench/_data``, written once and reused."""
    path = DATA / f"{freq}-{grid[0]}x{grid[1]}-{years}y.zarr"
    if not (path / ".zattrs").exists() and not (path / "zarr.json").exists():
        if path.exists():
            shutil.rmtree(path)
        DATA.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        write_synthetic(path, years=years, grid=grid, freq=freq)
        print(f"  wrote {path.name} in {time.perf_counter() - t:.0f} s", flush=True)
    return path


def bench_config(path: Path | str, sz: Sizes, *sets: str, years: int | None = None) -> Config:
    """The default task and model on ``path``, without a progress bar.

    With ``years`` (of a store starting in 1950), validation and test are the last two
    years, so that the epoch-end validation of a timed run is short.
    """
    base = [
        f"data.path={path}",
        f"data.batch_size={sz.batch}",
        "trainer.progress_bar=false",
        "trainer.patience=1000",
    ]
    if years is not None:
        last = 1950 + years - 1
        base += [
            f"data.split.train=[1950, {last - 2}]",
            f"data.split.val=[{last - 1}, {last - 1}]",
            f"data.split.test=[{last}, {last}]",
        ]
    return load_config(None, base + list(sets))


def new_task(cfg: Config, view: TaskView) -> ClimateTask:
    """The task :func:`~climatune.training.workflow.run_training` trains, freshly initialised."""
    net = new_net(cfg.model, view, len(static_channels(view)[0]), cfg.seed)
    return build_task(training_setup(cfg), view, net)


class StepTimer(pl.Callback):
    """Wall time of training steps ``warmup ..`` (the first ones pay for warming up)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end, self.samples = warmup, 0.0, 0.0, 0

    @staticmethod
    def _now() -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self.start = self._now()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step > self.warmup:
            self.end = self._now()
            self.samples += int(batch["anchor"].numel())

    def rate(self) -> float:
        """Samples per second over the timed steps (this process's share)."""
        return self.samples / max(self.end - self.start, 1e-9)


def bare_rate(
    cfg: Config,
    view: TaskView,
    norm: Normalizer,
    warmup: int,
    steps: int,
    *,
    channels_last: bool = False,
    deterministic: bool = False,
    fill: bool = True,
) -> float:
    """Samples/s of a plain PyTorch loop: same model, batches, loss, AdamW and clipping.

    ``deterministic`` and ``fill`` set ``torch.use_deterministic_algorithms`` and
    ``torch.utils.deterministic.fill_uninitialized_memory`` for the loop, then restore them.
    """
    torch.use_deterministic_algorithms(deterministic)
    torch.utils.deterministic.fill_uninitialized_memory = fill
    task = new_task(cfg, view)
    if channels_last:
        task = task.to(memory_format=torch.channels_last)
    loader = ClimateDataModule(
        view, norm, batch_size=cfg.data.batch_size, seed=cfg.seed
    ).train_dataloader()
    opt = torch.optim.AdamW(task.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    clip = cfg.trainer.gradient_clip_val
    start, n = 0.0, 0
    batches = iter(loader)
    try:
        for i in range(warmup + steps):
            if i == warmup:
                start = time.perf_counter()
            batch = next(batches)
            fields = batch["fields"]
            loss = weighted_mse(task(fields), batch["target"], task.weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(task.parameters(), clip)
            opt.step()
            n += int(fields.shape[0]) if i >= warmup else 0
        return n / (time.perf_counter() - start)
    finally:
        torch.use_deterministic_algorithms(False)
        torch.utils.deterministic.fill_uninitialized_memory = True


def training_flops(task: ClimateTask, batch: dict[str, torch.Tensor]) -> float:
    """FLOPs of one training step's forward and backward pass on ``batch``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        loss = weighted_mse(task(batch["fields"]), batch["target"], task.weight)
        loss.backward()
    task.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def matmul_flops(
    n: int, device: str = "cpu", dtype: torch.dtype = torch.float32, reps: int = 3
) -> float:
    """Best FLOP/s of an ``n x n`` matmul: the practical peak of this device and dtype."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = 0.0
    for _ in range(reps + 1):
        if device != "cpu":
            torch.cuda.synchronize()
        t = time.perf_counter()
        torch.mm(a, b)
        if device != "cpu":
            torch.cuda.synchronize()
        best = max(best, 2.0 * n**3 / (time.perf_counter() - t))
    return best
