"""A tiny annual NetCDF and tiny tuning configs, shared by the tuning tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

#: 30 annual steps, 1990-2019; the split leaves 24 non-test years for the folds.
SPLIT = {"train": [1990, 2007], "val": [2008, 2013], "test": [2014, 2019]}
SPACE = {
    "optim.lr": {"type": "float", "low": 1.0e-4, "high": 3.0e-3, "log": True},
    "model.dropout": {"type": "float", "low": 0.0, "high": 0.3},
    "data.batch_size": {"type": "categorical", "choices": [4, 8]},
}


def write_tiny(path: Path, years: int = 30, seed: int = 0) -> Path:
    """``tas`` (K) on an 8x12 grid, one step per year on a 360-day calendar, with a trend."""
    rng = np.random.default_rng(seed)
    time = xr.date_range(
        "1990-07-01", periods=years, freq="YS-JUL", calendar="360_day", use_cftime=True
    )
    lat = np.linspace(20.0, 60.0, 8)
    lon = np.linspace(230.0, 290.0, 12)
    step = np.arange(years, dtype=float)[:, None, None]
    tas = 280.0 - 0.5 * (lat[None, :, None] - 40.0) + 0.03 * step
    tas = tas + rng.normal(0.0, 0.5, (years, lat.size, lon.size))
    attrs = {"units": "K", "standard_name": "air_temperature"}
    ds = xr.Dataset(
        {"tas": (("time", "lat", "lon"), tas.astype("f4"), attrs)},
        coords={
            "time": time,
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
        },
    )
    ds.to_netcdf(path)
    return path


def tiny_config(data: Path, **task) -> dict:
    """A forecast config small enough to train a fold in a second or two."""
    return {
        "seed": 0,
        "data": {"path": str(data), "batch_size": 8, "split": dict(SPLIT)},
        "task": {"kind": "forecast", "history": 1, "lead": 1, **task},
        "model": {"width": 8, "depth": 1},
        "trainer": {"max_epochs": 1, "progress_bar": False, "patience": 1},
    }


@pytest.fixture(scope="session")
def tiny_nc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny(tmp_path_factory.mktemp("tuning-data") / "tiny.nc")


@pytest.fixture
def tiny_files(tiny_nc: Path, tmp_path: Path) -> tuple[Path, Path]:
    """``(config.yaml, space.yaml)`` in ``tmp_path``."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tiny_nc)))
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    return cfg, space
