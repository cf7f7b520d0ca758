"""Training benchmarks: Lightning overhead, CPU FLOP efficiency, and bf16 on a GPU."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import (
    DATA,
    Sizes,
    StepTimer,
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

from climatune.config import Config
from climatune.data.normalize import Normalizer
from climatune.data.samples import fit_normalizer, normalization_mode
from climatune.data.view import TaskView, build_view
from climatune.training.datamodule import ClimateDataModule
from climatune.training.losses import weighted_mse
from climatune.training.workflow import Scratch, run_training
from climatune.workflows import runs

__all__ = ["training_setup", "overhead", "efficiency", "gpu"]


def training_setup(
    sz: Sizes, *sets: str, years: int | None = None
) -> tuple[Config, TaskView, Normalizer]:
    """Config, view and statistics of the training benchmarks (monthly store, default model)."""
    years = years or sz.train_years
    store = synthetic_store("monthly", years, sz.train_grid)
    cfg = bench_config(
        store,
        sz,
        "trainer.max_epochs=1",
        f"trainer.limit_train_batches={sz.warmup + sz.steps}",
        *sets,
        years=years,
    )
    view = build_view(cfg.data, cfg.task)
    return cfg, view, fit_normalizer(view, normalization_mode(view, cfg.data.normalization))


def lightning_rate(cfg: Config, view: TaskView, norm: Normalizer, warmup: int) -> float:
    """Samples/s of :func:`~climatune.training.workflow.run_training` (CSV and TensorBoard
    logging on)."""
    timer = StepTimer(warmup)
    DATA.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        run_training(
            view,
            Path(tmp),
            runs.training_setup(cfg),
            init=Scratch(norm),
            origin="pretrain",
            callbacks=[timer],
            logs=True,
        )
    torch.use_deterministic_algorithms(False)  # _trainer turns it on for CPU runs
    return timer.rate()


def overhead(
    sz: Sizes, setup: tuple[Config, TaskView, Normalizer]
) -> tuple[list[dict[str, Any]], float]:
    """Lightning training vs a bare PyTorch loop; returns rows and Lightning's samples/s."""
    cfg, view, norm = setup
    rates = interleave(
        {
            "lightning": lambda r: lightning_rate(cfg, view, norm, sz.warmup),
            "bare": lambda r: bare_rate(cfg, view, norm, sz.warmup, sz.steps),
        },
        sz.rounds,
    )
    lit, bare = median(rates["lightning"]), median(rates["bare"])
    return [
        row("train_lightning_vs_bare", lit / bare, "ratio", 0.90),
        row("train_lightning_samples_per_s", lit, "samples/s"),
        row("train_bare_samples_per_s", bare, "samples/s"),
    ], lit


def first_batch(cfg: Config, view: TaskView, norm: Normalizer) -> dict[str, torch.Tensor]:
    return next(
        iter(ClimateDataModule(view, norm, batch_size=cfg.data.batch_size).train_dataloader())
    )


def efficiency(
    sz: Sizes, setup: tuple[Config, TaskView, Normalizer]
) -> tuple[list[dict[str, Any]], float]:
    """Achieved FLOP/s of the training step against the fp32 matmul peak, before and after.

    "before" is the step as climatune trains on a CPU (deterministic algorithms on, which
    also fills every new tensor with NaN, contiguous tensors); the variants drop the fill,
    determinism, and then use channels-last tensors. Returns rows and the FLOPs per sample.
    """
    cfg, view, norm = setup
    per_sample = (
        training_flops(new_task(cfg, view), first_batch(cfg, view, norm)) / cfg.data.batch_size
    )
    steps = 2
    variants = {
        "before": dict(deterministic=True),
        "deterministic_no_fill": dict(deterministic=True, fill=False),
        "no_deterministic": dict(deterministic=False),
        "channels_last": dict(deterministic=False, channels_last=True),
    }
    fns = {
        name: (lambda r, kw=kw: bare_rate(cfg, view, norm, 1, steps, **kw))
        for name, kw in variants.items()
    }
    fns["peak"] = lambda r: matmul_flops(sz.mm_size)
    got = interleave(fns, sz.rounds if sz.quick else max(2, sz.rounds))
    peak = median(got["peak"])
    fraction = {name: median(got[name]) * per_sample / peak for name in variants}
    best = max((n for n in variants if n != "before"), key=fraction.__getitem__)
    rows = [
        row("cpu_gflop_per_sample", per_sample / 1e9, "GFLOP (fwd+bwd)"),
        row("cpu_matmul_peak_gflops", peak / 1e9, "GFLOP/s fp32"),
        row("cpu_flops_fraction_before", fraction["before"], "of matmul peak"),
        row("cpu_flops_fraction_after", fraction[best], f"of matmul peak ({best})"),
    ]
    rows += [
        row(f"cpu_flops_fraction_{n}", fraction[n], "of matmul peak")
        for n in variants
        if n not in ("before", best)
    ]
    return rows, per_sample


def loader_rate(cfg: Config, view: TaskView, norm: Normalizer, batches: int) -> float:
    """Samples/s that the training DataLoader delivers on its own (CPU, no model)."""
    loader = ClimateDataModule(view, norm, batch_size=cfg.data.batch_size).train_dataloader()
    it, n = iter(loader), 0
    next(it)
    start = time.perf_counter()
    for _, batch in zip(range(batches), it, strict=False):
        n += int(batch["fields"].shape[0])
    return n / (time.perf_counter() - start)


def gpu_step_rate(
    cfg: Config,
    view: TaskView,
    norm: Normalizer,
    *,
    bf16: bool,
    channels_last: bool = False,
    compiled: bool = False,
    steps: int = 20,
    device: str = "cuda",
) -> float:
    """Samples/s of the bare training step on ``device``, the batch already there.

    ``compiled`` runs the network through ``torch.compile`` (compilation is not timed).
    """

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    task = new_task(cfg, view).to(device)
    if channels_last:
        task = task.to(memory_format=torch.channels_last)
    batch = {k: v.to(device) for k, v in first_batch(cfg, view, norm).items()}
    opt = torch.optim.AdamW(task.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    if compiled:
        task.net = torch.compile(task.net)
    clip = cfg.trainer.gradient_clip_val
    start = 0.0
    for i in range(steps + 3):
        if i == 3:
            sync()
            start = time.perf_counter()
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
            loss = weighted_mse(task(batch["fields"]), batch["target"], task.weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(task.parameters(), clip)
        opt.step()
    sync()
    return steps * int(batch["fields"].shape[0]) / (time.perf_counter() - start)


def gpu(sz: Sizes, flops_per_sample: float) -> list[dict[str, Any]]:
    """Training on the GPU (Lightning, as ``run_training`` runs it): samples/s and TFLOP/s.

    bf16-mixed at the CPU benchmarks' batch size and at one that fills the card better,
    fp32 at that size for what mixed precision buys, and ``trainer.compile=true``.
    """
    if not torch.cuda.is_available():
        return []
    timed, years = 8, 4 * sz.train_years  # enough samples for 10 batches of 256
    runs = {
        "bf16_b16": (16, "bf16-mixed", False),
        "bf16_b256": (256, "bf16-mixed", False),
        "fp32_b256": (256, "32-true", False),
        "bf16_b256_compiled": (256, "bf16-mixed", True),
    }
    setups = {
        name: training_setup(
            sz,
            "trainer.accelerator=gpu",
            "trainer.devices=1",
            f"trainer.precision={precision}",
            f"trainer.compile={str(compiled).lower()}",
            f"data.batch_size={batch}",
            f"trainer.limit_train_batches={sz.warmup + timed}",
            years=years,
        )
        for name, (batch, precision, compiled) in runs.items()
    }
    fns = {
        name: (lambda r, s=setup: lightning_rate(*s, sz.warmup)) for name, setup in setups.items()
    }
    fns["peak"] = lambda r: matmul_flops(8192, "cuda", torch.bfloat16)
    got = interleave(fns, max(2, sz.rounds))
    peak = median(got["peak"])
    rate = {name: median(got[name]) for name in runs}
    rows = [row("gpu_bf16_matmul_peak_tflops", peak / 1e12, "TFLOP/s (8192^3 bf16 matmul)")]
    for name in runs:
        achieved = rate[name] * flops_per_sample
        rows.append(row(f"gpu_{name}_samples_per_s", rate[name], "samples/s"))
        rows.append(row(f"gpu_{name}_fraction_of_peak", achieved / peak, "of bf16 matmul peak"))
    rows.append(row("gpu_bf16_vs_fp32_b256", rate["bf16_b256"] / rate["fp32_b256"], "speed-up"))
    rows.append(
        row(
            "gpu_compiled_vs_eager_b256", rate["bf16_b256_compiled"] / rate["bf16_b256"], "speed-up"
        )
    )
    return rows


def gpu_breakdown(sz: Sizes, flops_per_sample: float) -> list[dict[str, Any]]:
    """Where the GPU's time goes: the loader alone, and the step with the data on the card."""
    if not torch.cuda.is_available():
        return []
    peak = matmul_flops(8192, "cuda", torch.bfloat16)
    setups = {b: training_setup(sz, f"data.batch_size={b}") for b in (64, 256)}
    variants = {
        "bare_bf16_b64": (64, dict(bf16=True)),
        "bare_fp32_b64": (64, dict(bf16=False)),
        "bare_bf16_b64_channels_last": (64, dict(bf16=True, channels_last=True)),
        "bare_bf16_b256": (256, dict(bf16=True)),
        "bare_bf16_b64_compiled": (64, dict(bf16=True, compiled=True)),
        "bare_bf16_b256_compiled": (256, dict(bf16=True, compiled=True)),
    }
    fns = {
        name: (lambda r, s=setups[b], kw=kw: gpu_step_rate(*s, **kw))
        for name, (b, kw) in variants.items()
    }
    fns["loader_b64"] = lambda r: loader_rate(*setups[64], batches=8)
    got = {name: median(v) for name, v in interleave(fns, max(2, sz.rounds)).items()}
    rows = [row("gpu_loader_b64_samples_per_s", got["loader_b64"], "samples/s (CPU, 1 process)")]
    for name in variants:
        rows.append(row(f"gpu_{name}_samples_per_s", got[name], "samples/s (data on the GPU)"))
    best = max(variants, key=got.__getitem__)
    rows.append(
        row(
            "gpu_bare_best_fraction_of_peak",
            got[best] * flops_per_sample / peak,
            f"of bf16 matmul peak ({best})",
        )
    )
    return rows
