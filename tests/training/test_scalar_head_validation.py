"""Index training on tens of samples: a validation loss that means something every epoch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from climatune.config import load_config
from climatune.data.samples import TaskSamples
from climatune.data.synthetic import write_synthetic
from climatune.data.view import build_view
from climatune.inference import load_model
from climatune.workflows.pretraining import pretrain


@pytest.fixture(scope="module")
def small_index_run(tmp_path_factory):
    """nino34 at lead 1 from 34 training months, batches of 4, 15 epochs."""
    root = tmp_path_factory.mktemp("scalar")
    store = write_synthetic(root / "s.zarr", years=8, grid=(16, 32), seed=0)
    cfg = load_config(
        None,
        [
            f"data.path={store}",
            "data.variables=[sst, tas, siconc]",
            "task.kind=index",
            "task.lead=1",
            "task.index.variable=nino34",
            "data.split.train=[1950, 1952]",
            "data.split.val=[1954, 1955]",
            "data.split.test=[1957, 1957]",
            "data.batch_size=4",
            "model.width=8",
            "model.depth=2",
            "optim.lr=3e-3",
            "trainer.max_epochs=15",
            "trainer.patience=15",
            "trainer.progress_bar=false",
            "trainer.accelerator=cpu",
        ],
    )
    return pretrain(cfg, out=root / "run")


def test_index_validation_loss_has_no_jumps(small_index_run):
    # Before: [0.51, 0.45, 0.43, 0.47, 0.56, 0.75, 0.55, 14.6, 0.40, 1.51, 14.5, ...], the
    # head's running batch-norm statistics lagging the training backbone.
    val = pd.read_csv(small_index_run / "logs" / "metrics.csv")["val_loss"].dropna().to_numpy()
    assert val.size == 15
    best = np.minimum.accumulate(val)
    assert np.all(val[1:] < 10 * best[:-1]), f"val loss jumps: {np.round(val, 3).tolist()}"
    assert val.max() < 2.0  # nino34 has about unit variance: no epoch is wildly off


def test_exported_head_statistics_are_those_of_the_training_set(small_index_run):
    model = load_model(small_index_run)
    view = build_view(model.meta.data_config, model.meta.task_config)
    samples = TaskSamples(view, "train", model.normalizer)
    fields = torch.stack([samples[i]["fields"] for i in range(len(samples))])
    static = model.static.expand(fields.shape[0], *model.static.shape)
    with torch.no_grad():
        pooled = model.net.forward_features(fields, static).mean(dim=(-2, -1))
    norm = model.net.head.norm
    torch.testing.assert_close(norm.running_mean, pooled.mean(0), rtol=1e-3, atol=1e-3)
    spread = pooled.std(0)
    assert torch.all((norm.running_var.sqrt() - spread).abs() < 0.35 * spread)
