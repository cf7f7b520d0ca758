"""The GPU path: bf16-mixed training on CUDA, and GPU inference that matches the CPU's.

Skipped where torch sees no CUDA GPU, as in CI; on a GPU machine run ``pytest tests/gpu``.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from climatune.cli import main
from climatune.config import load_config
from climatune.data.synthetic import write_synthetic
from climatune.data.view import build_view
from climatune.evaluation.evaluate import evaluate_view
from climatune.explain.run import explain
from climatune.inference import load_model, predict_view
from climatune.workflows.finetuning import finetune
from climatune.workflows.pretraining import pretrain

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SPLIT = (
    "data.split.train=[1950, 1959]",
    "data.split.val=[1960, 1961]",
    "data.split.test=[1962, 1963]",
)


def gpu_config(store: Path, *sets: str):
    """Next-month tas from tas, sst and siconc on the GPU in bf16-mixed precision."""
    return load_config(
        None,
        [
            f"data.path={store}",
            "data.variables=[tas, sst, siconc]",
            "data.targets=[tas]",
            *SPLIT,
            "data.batch_size=16",
            "model.width=32",
            "model.depth=2",
            "optim.lr=1e-3",
            "trainer.accelerator=gpu",
            "trainer.devices=1",
            "trainer.precision=bf16-mixed",
            "trainer.max_epochs=6",
            "trainer.patience=6",
            "trainer.progress_bar=false",
            *sets,
        ],
    )


@contextmanager
def exact_float32():
    """Plain fp32 kernels (no TF32), so GPU and CPU results are comparable closely."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return write_synthetic(
        tmp_path_factory.mktemp("gpu") / "s.zarr", years=14, grid=(32, 64), seed=0
    )


@pytest.fixture(scope="module")
def run(store, tmp_path_factory) -> Path:
    return pretrain(gpu_config(store), out=tmp_path_factory.mktemp("gpu") / "run")


def test_bf16_training_learns_and_exports_float32_weights(run):
    logs = pd.read_csv(run / "logs" / "metrics.csv")
    train = logs["train_loss_epoch"].dropna().to_numpy()
    val = logs["val_loss"].dropna().to_numpy()
    assert np.isfinite(train).all() and np.isfinite(val).all()
    assert train[-1] < 0.5 * train[0] and val.min() < val[0]
    weights = load_file(str(run / "model" / "weights.safetensors"))
    assert {t.dtype for t in weights.values()} == {torch.float32}
    model = load_model(run, "cuda")
    rows, _ = evaluate_view(
        build_view(model.meta.data_config, model.meta.task_config),
        {"model": model},
        ["persistence"],
    )
    rmse = {r["model"]: r["value"] for r in rows if r["metric"] == "rmse"}
    # The residual network starts from persistence; six epochs must not make it worse.
    assert rmse["model"] < 1.05 * rmse["persistence"], rmse


def test_models_load_onto_the_gpu_and_predict_as_on_the_cpu(run):
    cpu, gpu = load_model(run, "cpu"), load_model(run, "auto")
    assert gpu.device.type == "cuda"
    assert all(p.is_cuda for p in gpu.net.parameters()) and gpu.static.device.type == "cpu"
    view = build_view(cpu.meta.data_config, cpu.meta.task_config)
    with exact_float32():
        a, b = (predict_view(m, view, "test").tas for m in (cpu, gpu))
    assert a.notnull().all() and float(np.abs(a - b).max()) < 1e-3  # kelvin


def test_explain_on_the_gpu_matches_the_cpu(run):
    cpu, gpu = load_model(run, "cpu"), load_model(run, "cuda")
    view = build_view(cpu.meta.data_config, cpu.meta.task_config)
    for method in ("ig", "shap"):
        with exact_float32():
            a, b = (
                explain(m, view, method=method, target="tas", samples=4).attribution
                for m in (cpu, gpu)
            )
        scale = float(np.abs(a).max())
        assert scale > 0 and float(np.abs(a - b).max()) < 1e-3 * scale, method


def test_finetune_on_the_gpu_from_a_gpu_pretrained_model(run, store, tmp_path):
    cfg = gpu_config(
        store,
        "data.region={lat: [20, 60], lon: [200, 280]}",
        "data.split.train=[1956, 1958]",
        "trainer.max_epochs=4",
        "finetune.strategy=partial",
    )
    tuned = finetune(cfg, source=run, out=tmp_path / "tuned")
    model = load_model(tuned, "cuda")
    assert model.meta.data["parent"]
    val = pd.read_csv(tuned / "logs" / "metrics.csv")["val_loss"].dropna()
    assert len(val) >= 1 and np.isfinite(val).all()
    pred = predict_view(
        model, build_view(model.meta.data_config, model.meta.task_config), "test"
    ).tas
    assert 200 < float(pred.mean()) < 320


def test_cli_predict_writes_the_same_file_on_either_device(run, store, tmp_path):
    paths = {d: tmp_path / f"{d}.nc" for d in ("cpu", "cuda")}
    with exact_float32():
        for device, out in paths.items():
            argv = ["predict", str(run), "--input", str(store), "--output", str(out)]
            assert main([*argv, "--device", device]) == 0
    import xarray as xr

    a, b = (xr.open_dataset(p).tas.values for p in paths.values())
    np.testing.assert_allclose(b, a, atol=1e-3)
