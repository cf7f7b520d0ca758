"""A tiny annual NetCDF and tiny tuning configs, shared by the tuning tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from climatune.testing import tiny_annual_archive, tiny_config

#: 30 annual steps, 1990-2019; the split leaves 24 non-test years for the folds.
SPLIT = {"train": [1990, 2007], "val": [2008, 2013], "test": [2014, 2019]}
SPACE = {
    "optim.lr": {"type": "float", "low": 1.0e-4, "high": 3.0e-3, "log": True},
    "model.dropout": {"type": "float", "low": 0.0, "high": 0.3},
    "data.batch_size": {"type": "categorical", "choices": [4, 8]},
}
#: ``climatune.testing.tiny_config`` settings for the annual archive: its variable, SPLIT,
#: one epoch.
ANNUAL = (
    "data.variables=null",
    f"data.split={json.dumps(SPLIT)}",
    "trainer.max_epochs=1",
    "trainer.patience=1",
)


@pytest.fixture(scope="session")
def tiny_nc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_annual_archive(tmp_path_factory.mktemp("tuning-data") / "tiny.nc")


@pytest.fixture
def tiny_files(tiny_nc: Path, tmp_path: Path) -> tuple[Path, Path]:
    """``(config.yaml, space.yaml)`` in ``tmp_path``."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tiny_nc, *ANNUAL).model_dump(mode="json")))
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    return cfg, space
