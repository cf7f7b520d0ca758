"""Bounded memory: streaming pretraining on a ~1 GB and a ~6 GB store, peak RSS of each.

Each store is trained on in its own process (``python bench/_memory.py STORE ...``), which
reports its peak resident memory, so the two peaks are measured alike. After the training
steps the child streams a few more chunks, so that several shuffle buffers pass through.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import DATA, Sizes, bench_config, row, synthetic_store

__all__ = ["memory"]

MIN_FREE_BYTES = 12 << 30  # the 6 GB store takes about 2.5 GB of disk, compressed


def _child(args: argparse.Namespace) -> None:
    from climatune.data.samples import block_nbytes, fit_normalizer, normalization_mode
    from climatune.data.view import build_view
    from climatune.training.datamodule import ClimateDataModule
    from climatune.training.workflow import Scratch, run_training
    from climatune.workflows.runs import training_setup

    sets = [f"trainer.max_steps={args.steps}", "trainer.log_every_n_steps=1"]
    sets.append("data.in_memory=never")
    cfg = bench_config(args.store, args.sizes, *sets)
    view = build_view(cfg.data, cfg.task)
    t = time.perf_counter()
    norm = fit_normalizer(view, normalization_mode(view, cfg.data.normalization))
    norm_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        run_training(view, Path(tmp), training_setup(cfg), init=Scratch(norm), origin="pretrain")
    data = ClimateDataModule(view, norm, batch_size=cfg.data.batch_size, in_memory="never")
    stream = data.samples("train")
    limit = sum(c.size for c in stream.chunks[: args.drain_chunks])
    seen = 0
    for batch in data.train_dataloader():
        seen += int(batch["anchor"].numel())
        if seen >= limit:
            break
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "peak_mb": peak_kb / 1024,
                "norm_s": norm_s,
                "streamed": seen,
                "block_gb": block_nbytes(view, "train") / 2**30,
            }
        )
    )


def _run_child(store: Path, sz: Sizes) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        str(store),
        "--steps",
        str(sz.memory_steps),
        "--drain-chunks",
        str(sz.memory_drain_chunks),
    ] + (["--quick"] if sz.quick else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"memory child failed on {store.name}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory(sz: Sizes) -> list[dict[str, Any]]:
    """Peak RSS of streaming pretraining on a small and a large store, and the stats time."""
    small_years, large_years = sz.memory_years
    free = shutil.disk_usage(DATA.parent).free
    if not sz.quick and free < MIN_FREE_BYTES:
        print(f"  skipping the large store: {free / 2**30:.1f} GB free", flush=True)
        return [row("mem_large_store_skipped_free_gb", free / 2**30, "GB free")]
    small = _run_child(synthetic_store("daily", small_years, sz.memory_grid), sz)
    large = _run_child(synthetic_store("daily", large_years, sz.memory_grid), sz)
    tag = f"{small['block_gb']:.1f}GB->{large['block_gb']:.1f}GB"
    return [
        row(
            "mem_peak_small_mb",
            small["peak_mb"],
            f"MB ({small['block_gb']:.2f} GB train block)",
            better="lower",
        ),
        row(
            "mem_peak_large_mb",
            large["peak_mb"],
            f"MB ({large['block_gb']:.2f} GB train block)",
            2500.0,
            "lower",
        ),
        row(
            "mem_large_over_small",
            large["peak_mb"] / small["peak_mb"],
            f"ratio ({tag})",
            1.2,
            "lower",
        ),
        row("norm_stats_large_s", large["norm_s"], "s (out of core, Dask)", better="lower"),
    ]


if __name__ == "__main__":
    from _common import FULL, QUICK

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("store")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--drain-chunks", type=int, default=10)
    parser.add_argument("--quick", action="store_true")
    ns = parser.parse_args()
    ns.sizes = QUICK if ns.quick else FULL
    _child(ns)
