"""The loader overlaps the step: pinned batches on CUDA, persistent in-memory workers."""

from __future__ import annotations

from types import SimpleNamespace

from lightning.pytorch.accelerators import CPUAccelerator, CUDAAccelerator

from climatune.data.samples import fit_normalizer
from climatune.data.view import build_view
from climatune.testing import tiny_config
from climatune.training.datamodule import ClimateDataModule


def test_batches_are_pinned_only_for_a_cuda_trainer(archive):
    cfg = tiny_config(archive)
    view = build_view(cfg.data, cfg.task)
    normalizer = fit_normalizer(view)
    data = ClimateDataModule(view, normalizer, batch_size=4, num_workers=1)
    assert not data.pin_memory  # no trainer yet
    data.trainer = SimpleNamespace(accelerator=CPUAccelerator())
    loader = data.train_dataloader()
    assert not loader.pin_memory and loader.persistent_workers and loader.num_workers == 1
    data.trainer = SimpleNamespace(accelerator=CUDAAccelerator())
    assert data.pin_memory and data.val_dataloader().pin_memory
