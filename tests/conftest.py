"""Shared test fixtures: tiny, seeded, CF-style climate datasets."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads; see utils/openmp.py
if os.environ.get("PYTEST_XDIST_WORKER"):  # parallel workers share the cores: one thread each
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from collections.abc import Callable, Sequence  # noqa: E402

import numpy as np
import pytest
import xarray as xr

LEVELS = (1000.0, 850.0, 500.0, 250.0, 100.0)


def create_test_data(
    ntime: int = 24,
    nlat: int = 6,
    nlon: int = 8,
    *,
    nlevel: int = 0,
    calendar: str = "noleap",
    freq: str = "MS",
    start: str = "2000-01-01",
    seed: int = 0,
    time_name: str = "time",
    lat_name: str = "lat",
    lon_name: str = "lon",
    level_name: str = "level",
    descending_lat: bool = False,
    lon_180: bool = False,
    index: bool = False,
    variables: Sequence[str] = ("tas", "pr"),
) -> xr.Dataset:
    """A tiny CF dataset in the file's own names (the canonical ones by default).

    ``tas = 200 + lat + lon / 1000 + step`` exactly (in K), so tests can check that values
    follow their coordinates through any reordering; ``pr`` is seeded noise; ``nlevel > 0``
    adds ``z = level + lat`` on hPa levels; ``index=True`` adds a ``nino34(time)`` series.
    Longitudes are ``[-180, 180)`` with ``lon_180`` and ``[0, 360)`` otherwise.
    """
    rng = np.random.default_rng(seed)
    time = xr.date_range(start, periods=ntime, freq=freq, calendar=calendar, use_cftime=True)
    lat = np.linspace(-75.0, 75.0, nlat)
    lat = lat[::-1] if descending_lat else lat
    lon = np.arange(nlon) * 360.0 / nlon - (180.0 if lon_180 else 0.0)
    step = np.arange(ntime, dtype=float)[:, None, None]
    grid = ("time", "lat", "lon")
    data = {}
    if "tas" in variables:
        tas = 200.0 + lat[None, :, None] + lon[None, None, :] / 1000.0 + step
        data["tas"] = (
            grid,
            tas.astype("f4"),
            {
                "units": "K",
                "standard_name": "air_temperature",
                "long_name": "near-surface air temperature",
            },
        )
    if "pr" in variables:
        pr = rng.gamma(2.0, 1e-5, size=(ntime, nlat, nlon)).astype("f4")
        data["pr"] = (grid, pr, {"units": "kg m-2 s-1", "standard_name": "precipitation_flux"})
    coords = {
        "time": ("time", time, {"standard_name": "time"}),
        "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
        "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
    }
    if nlevel:
        level = np.asarray(LEVELS[:nlevel])
        z = np.broadcast_to(
            level[None, :, None, None] + lat[None, None, :, None], (ntime, nlevel, nlat, nlon)
        ).astype("f4")
        data["z"] = (
            ("time", "level", "lat", "lon"),
            z,
            {"units": "m", "standard_name": "geopotential_height"},
        )
        coords["level"] = ("level", level, {"units": "hPa", "positive": "down"})
    if index:
        data["nino34"] = ("time", rng.normal(size=ntime).astype("f4"), {"units": "K"})
    ds = xr.Dataset(data, coords=coords, attrs={"title": "climatune test data"})
    names = {"time": time_name, "lat": lat_name, "lon": lon_name, "level": level_name}
    return ds.rename({k: v for k, v in names.items() if k != v and k in ds.variables})


@pytest.fixture
def make_test_dataset() -> Callable[..., xr.Dataset]:
    """Factory for :func:`create_test_data`."""
    return create_test_data
