"""The variable-token ViT: its CPU training step against the fp32 matmul peak, and the
``examples/foundation`` config (about 100 M parameters) through Lightning on a GPU
against the bf16 matmul peak."""

from __future__ import annotations

from typing import Any

import torch
from _common import (
    ROOT,
    Sizes,
    bare_rate,
    bench_config,
    interleave,
    matmul_flops,
    median,
    new_task,
    row,
    synthetic_store,
    training_flops,
)
from _training import first_batch, lightning_rate

from climatune.config import load_config
from climatune.data.samples import fit_normalizer, normalization_mode
from climatune.data.view import build_view

__all__ = ["vartoken", "foundation"]

DEVICE = "cuda"
FOUNDATION = ROOT / "examples" / "foundation" / "pretrain.yaml"
#: A CPU-sized variable-token ViT: 512-wide tokens, 4 blocks (about 13 M parameters).
CPU_MODEL = ("model.backbone=vartoken_vit", "model.width=128", "model.depth=4", "model.patch=4")


def vartoken(sz: Sizes) -> list[dict[str, Any]]:
    """The CPU training step of a variable-token ViT as a fraction of the matmul peak,
    both measured in this run, in turn, on one thread.

    One thread, for both: on a machine shared with other jobs, threads that wait for
    each other at every barrier measure the neighbours rather than the network. The
    grid is 32x64 and the batch 8 at every size, so that a step takes seconds.
    """
    years = 30
    store = synthetic_store("monthly", years, (32, 64))
    cfg = bench_config(store, sz, *CPU_MODEL, "task.history=3", "data.batch_size=8", years=years)
    view = build_view(cfg.data, cfg.task)
    norm = fit_normalizer(view, normalization_mode(view, cfg.data.normalization))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        per_sample = training_flops(new_task(cfg, view), first_batch(cfg, view, norm))
        per_sample /= cfg.data.batch_size
        got = interleave(
            {
                "step": lambda r: bare_rate(cfg, view, norm, 1, 3),
                "peak": lambda r: matmul_flops(2048, reps=8),
            },
            2,
        )
    finally:
        torch.set_num_threads(threads)
    peak, rate = max(got["peak"]), median(got["step"])  # the peak is the best seen
    return [
        row("cpu_vartoken_matmul_peak_gflops", peak / 1e9, "GFLOP/s fp32 2048^3, 1 thread"),
        row("cpu_vartoken_samples_per_s", rate, "samples/s, 1 thread"),
        row("cpu_vartoken_gflop_per_sample", per_sample / 1e9, "GFLOP (forward + backward)"),
        row("cpu_vartoken_flops_fraction", rate * per_sample / peak, "of fp32 matmul peak", 0.5),
    ]


def foundation(sz: Sizes) -> list[dict[str, Any]]:
    """``examples/foundation`` (bf16-mixed, compiled, checkpointed) trained by Lightning on
    the GPU: samples/s and the fraction of the bf16 matmul peak measured in this run.

    The FLOPs per sample are counted on the GPU without activation checkpointing (the
    recomputation is not useful work), so the fraction is the model FLOP utilisation;
    the same config without checkpointing is timed too, for what the recomputation costs.
    """
    if not torch.cuda.is_available():
        return []
    timed, warmup = 10, sz.warmup + 3  # the first steps compile the network
    batch_size = load_config(FOUNDATION).data.batch_size
    years = 3 + -(-(warmup + timed + 1) * batch_size // 12)  # train years enough for them all
    store = synthetic_store("monthly", years, (32, 64))
    last = 1950 + years - 1
    sets = [
        f"data.path={store}",
        f"data.split.train=[1950, {last - 2}]",
        f"data.split.val=[{last - 1}, {last - 1}]",
        f"data.split.test=[{last}, {last}]",
        "trainer.accelerator=gpu",
        "trainer.devices=1",
        "trainer.max_epochs=1",
        "trainer.progress_bar=false",
        f"trainer.limit_train_batches={warmup + timed}",
    ]
    cfg = load_config(FOUNDATION, sets)
    view = build_view(cfg.data, cfg.task)
    norm = fit_normalizer(view, normalization_mode(view, cfg.data.normalization))
    plain = load_config(FOUNDATION, [*sets, "model.activation_checkpointing=false"])
    task = new_task(plain, view).to(DEVICE)
    batch = {k: v.to(DEVICE) for k, v in first_batch(cfg, view, norm).items()}
    with torch.autocast(DEVICE, dtype=torch.bfloat16):
        per_sample = training_flops(task, batch) / cfg.data.batch_size
    n_params = sum(p.numel() for p in task.parameters())
    del task, batch
    torch.cuda.empty_cache()
    got = interleave(
        {
            "step": lambda r: lightning_rate(cfg, view, norm, warmup),
            "plain": lambda r: lightning_rate(plain, view, norm, warmup),
            "peak": lambda r: matmul_flops(8192, "cuda", torch.bfloat16),
        },
        2,
    )
    peak, rate, plain_rate = median(got["peak"]), median(got["step"]), median(got["plain"])
    return [
        row("gpu_foundation_params_millions", n_params / 1e6, "M parameters"),
        row("gpu_foundation_bf16_peak_tflops", peak / 1e12, "TFLOP/s (8192^3 bf16 matmul)"),
        row("gpu_foundation_samples_per_s", rate, "samples/s"),
        row(
            "gpu_foundation_fraction_of_peak",
            rate * per_sample / peak,
            "of bf16 matmul peak (Lightning, compiled)",
            0.35,
        ),
        row("gpu_foundation_no_checkpointing_samples_per_s", plain_rate, "samples/s"),
        row(
            "gpu_foundation_no_checkpointing_fraction_of_peak",
            plain_rate * per_sample / peak,
            "of bf16 matmul peak (activations stored, not recomputed)",
        ),
    ]
