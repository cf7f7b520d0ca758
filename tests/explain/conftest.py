"""Tiny synthetic archives and model artifacts for the explain tests.

Artifacts are written with the library's own export path, untrained (for the command
line tests) or with weights that encode a known relation exactly (for the truth tests).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from climatune.config import Config, load_config
from climatune.data.samples import fit_normalizer, static_channels
from climatune.data.synthetic import write_synthetic
from climatune.data.view import build_view
from climatune.training.run import export_model, new_net, residual_index
from climatune.training.task import ClimateTask

YEARS = 8
SPLIT = (
    "data.split.train=[1950, 1954]",
    "data.split.val=[1955, 1955]",
    "data.split.test=[1956, 1957]",
)


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    """One torch thread: on a busy 2-core machine, two threads make small convs ~100x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8-year monthly synthetic archive on a 24x48 (7.5°) grid, seed 0."""
    return write_synthetic(
        tmp_path_factory.mktemp("synth") / "s24.zarr", years=YEARS, grid=(24, 48), seed=0
    )


@pytest.fixture(scope="session")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same archive on a 16x32 grid, for the command line tests."""
    return write_synthetic(
        tmp_path_factory.mktemp("synth") / "s16.zarr", years=YEARS, grid=(16, 32), seed=0
    )


def small_config(path: Path, *overrides: str) -> Config:
    """A config over ``path`` with a tiny U-Net, quiet training and an explicit year split."""
    return load_config(
        None,
        [
            f"data.path={path}",
            "model.width=8",
            "model.depth=2",
            "trainer.progress_bar=false",
            "trainer.accelerator=cpu",
            *SPLIT,
            *overrides,
        ],
    )


@pytest.fixture(scope="session")
def make_config() -> Callable[..., Config]:
    """Factory for :func:`small_config`."""
    return small_config


def export_untrained(
    cfg: Config, out: Path, edit: Callable[[ClimateTask], None] | None = None
) -> Path:
    """Write ``out/model`` for ``cfg`` with fresh (or ``edit``-ed) weights; return its path."""
    view = build_view(cfg.data, cfg.task)
    normalizer = fit_normalizer(view)
    names, static = static_channels(view)
    net = new_net(cfg, view, len(names))
    weight = torch.from_numpy(view.weights().values.astype(np.float32))
    net.set_residual(residual_index(view, cfg.model.residual))
    task = ClimateTask(net, torch.from_numpy(static), weight)
    task.static_names = names
    if edit is not None:
        edit(task)
    export_model(out / "model", cfg, view, normalizer, task)
    return out / "model"


def zero_head(task: ClimateTask) -> None:
    """Zero the field head: with the residual on, the model predicts persistence exactly."""
    with torch.no_grad():
        task.net.head.proj.weight.zero_()
        task.net.head.proj.bias.zero_()


@pytest.fixture(scope="session")
def persistence_model(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tas, sst, siconc -> sst at t+1 whose weights encode ``sst(t+1) = sst(t)`` exactly."""
    cfg = small_config(store, "data.variables=[tas, sst, siconc]", "data.targets=[sst]")
    return export_untrained(cfg, tmp_path_factory.mktemp("persistence"), zero_head)


@pytest.fixture(scope="session")
def forecast_model(small_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained forecast model: tas, sst, siconc (2 steps) -> tas, sst."""
    cfg = small_config(
        small_store,
        "data.variables=[tas, sst, siconc]",
        "data.targets=[tas, sst]",
        "task.history=2",
    )
    return export_untrained(cfg, tmp_path_factory.mktemp("forecast"))


@pytest.fixture(scope="session")
def index_model(small_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained index model: tas, sst -> nino34 at lead 0."""
    cfg = small_config(
        small_store,
        "data.variables=[tas, sst]",
        "task.kind=index",
        "task.lead=0",
        "task.index.variable=nino34",
    )
    return export_untrained(cfg, tmp_path_factory.mktemp("index"))
