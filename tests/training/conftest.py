"""Tiny archives and configs for training tests."""

from __future__ import annotations

import numpy as np
import pytest

from climatune.config import load_config
from tests.conftest import create_test_data


def tiny_archive(path, *, seed: int = 0, ntime: int = 96, nlat: int = 8, nlon: int = 16):
    """A small monthly archive with tas, pr and a NaN-masked sst; returns ``path``."""
    ds = create_test_data(ntime=ntime, nlat=nlat, nlon=nlon, seed=seed)
    rng = np.random.default_rng(seed)
    ds["tas"] = ds.tas + rng.normal(0, 0.5, ds.tas.shape).astype("f4")
    ds["sst"] = (
        (ds.tas - 5)
        .where(ds.lat < 40)
        .assign_attrs(units="K", standard_name="sea_surface_temperature")
    )
    ds.to_netcdf(path)
    return path


def tiny_config(path, *sets: str):
    """A config that trains in seconds: width 8, depth 1, two epochs, no progress bar."""
    base = [
        f"data.path={path}",
        "data.variables=[tas, sst]",
        "data.split.train=[2000, 2004]",
        "data.split.val=[2005, 2005]",
        "data.split.test=[2006, 2007]",
        "data.batch_size=8",
        "model.width=8",
        "model.depth=1",
        "trainer.max_epochs=2",
        "trainer.progress_bar=false",
        "trainer.log_every_n_steps=1",
    ]
    return load_config(None, base + list(sets))


@pytest.fixture
def archive(tmp_path):
    return tiny_archive(tmp_path / "tiny.nc")
