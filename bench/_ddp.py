"""DDP on the CPU: two processes against one on the same total work (equal global batch).

Each run is ``python bench/_ddp.py OUT --devices N ...`` (Lightning launches the second
rank by running the same command); rank 0 writes its timed rate to ``OUT/rate.json`` and
the loss curve, averaged over the ranks, comes from ``OUT/logs/metrics.csv``.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
from _common import DATA, Sizes, StepTimer, bench_config, row, synthetic_store

__all__ = ["ddp"]


class GlobalLoss(pl.Callback):
    """Log each step's loss averaged over the ranks: the loss of the whole global batch."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        pl_module.log(
            "train_loss_global",
            outputs["loss"].detach(),
            on_step=True,
            on_epoch=False,
            sync_dist=True,
            reduce_fx="mean",
        )


def _child(args: argparse.Namespace) -> None:
    import torch.distributed as dist

    from climatune.data.samples import fit_normalizer, normalization_mode
    from climatune.data.view import build_view
    from climatune.training.workflow import Scratch, run_training
    from climatune.workflows.runs import training_setup

    sz: Sizes = args.sizes
    sets = [
        "trainer.max_epochs=1",
        f"trainer.limit_train_batches={args.steps}",
        "trainer.log_every_n_steps=1",
        "trainer.accelerator=cpu",
        f"trainer.devices={args.devices}",
        f"data.batch_size={sz.batch // args.devices}",
    ]
    if args.devices > 1:
        sets.append("trainer.strategy=ddp")
    store = synthetic_store("monthly", sz.train_years, sz.train_grid)
    cfg = bench_config(store, sz, *sets, years=sz.train_years)
    view = build_view(cfg.data, cfg.task)
    norm = fit_normalizer(view, normalization_mode(view, cfg.data.normalization))
    timer = StepTimer(sz.warmup)
    _, trainer = run_training(
        view,
        Path(args.out),
        training_setup(cfg),
        init=Scratch(norm),
        origin="pretrain",
        callbacks=[timer, GlobalLoss()],
    )
    rate = timer.rate() * (dist.get_world_size() if dist.is_initialized() else 1)
    if trainer.is_global_zero:
        (Path(args.out) / "rate.json").write_text(json.dumps({"samples_per_s": rate}))


def _losses(out: Path) -> tuple[np.ndarray, float]:
    """``train_loss_global`` by step and the final ``val_loss``, from Lightning's CSV log."""
    with open(out / "logs" / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    train = sorted(
        (int(r["step"]), float(r["train_loss_global"])) for r in rows if r.get("train_loss_global")
    )
    val = [float(r["val_loss"]) for r in rows if r.get("val_loss")]
    return np.array([v for _, v in train]), val[-1] if val else float("nan")


def _run(devices: int, sz: Sizes, steps: int) -> tuple[float, np.ndarray, float]:
    out = DATA / f"ddp-{devices}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, __file__, str(out), "--devices", str(devices), "--steps", str(steps)]
    done = subprocess.run(
        cmd + (["--quick"] if sz.quick else []), capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(f"DDP child ({devices} processes) failed:\n{done.stderr[-3000:]}")
    rate = json.loads((out / "rate.json").read_text())["samples_per_s"]
    return rate, *_losses(out)


def ddp(sz: Sizes) -> list[dict[str, Any]]:
    """Speedup of 2 DDP processes over 1, and whether their losses agree.

    Both runs log each step's loss over the whole global batch (averaged over the
    ranks). The global batches hold different samples (Lightning's distributed sampler
    reshuffles), so step losses differ by sampling noise; the validation loss at the end
    of the run, on the same samples, is the judged comparison.
    """
    one, train1, val1 = _run(1, sz, sz.ddp_steps)
    two, train2, val2 = _run(2, sz, sz.ddp_steps)
    n = min(train1.size, train2.size)
    tail = slice(n // 2, n)
    return [
        row("ddp2_vs_1_speedup", two / one, "ratio (2 CPU processes / 1)"),
        row("ddp_val_loss_rel_diff", abs(val2 - val1) / val1, f"after {n} steps", 0.10, "lower"),
        row(
            "ddp_train_loss_tail_rel_diff",
            abs(train2[tail].mean() - train1[tail].mean()) / train1[tail].mean(),
            f"mean of steps {n // 2}-{n - 1}",
            better="lower",
        ),
        row(
            "ddp_train_loss_step_mean_rel_diff",
            float((np.abs(train2[:n] - train1[:n]) / train1[:n]).mean()),
            "per step (sampling noise)",
            better="lower",
        ),
    ]


if __name__ == "__main__":
    from _common import FULL, QUICK

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--quick", action="store_true")
    ns = parser.parse_args()
    ns.sizes = QUICK if ns.quick else FULL
    _child(ns)
