"""Tiny, seeded climate archives and configs that train in seconds.

The test suite builds its data with these helpers, and a user can use them to test a
plug-in (a registered backbone, say) end to end on a laptop:

>>> import tempfile
>>> from pathlib import Path
>>> from climatune.testing import tiny_archive, tiny_config
>>> path = tiny_archive(Path(tempfile.mkdtemp()) / "tiny.nc")
>>> cfg = tiny_config(path, "trainer.max_epochs=1")
>>> cfg.data.variables, cfg.trainer.max_epochs
(['tas', 'sst'], 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from climatune.config import Config, load_config

__all__ = ["create_test_data", "tiny_archive", "tiny_annual_archive", "tiny_config"]

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
    """A tiny, seeded CF dataset, in the file's own names (the canonical ones by default).

    ``tas = 200 + lat + lon / 1000 + step`` exactly (in K), so tests can check that values
    follow their coordinates through any reordering; ``pr`` is seeded noise; ``nlevel > 0``
    adds ``z = level + lat`` on hPa levels; ``index=True`` adds a ``nino34(time)`` series.

    Parameters
    ----------
    ntime, nlat, nlon, nlevel
        Sizes of the axes; no ``level`` axis when ``nlevel`` is 0 (at most 5 levels).
    calendar, freq, start
        The cftime axis: ``ntime`` steps from ``start`` at pandas frequency ``freq``.
    seed
        Seed of the random fields.
    time_name, lat_name, lon_name, level_name
        Names the file uses for its dimensions (to test aliases).
    descending_lat, lon_180
        Latitude from north to south; longitudes in ``[-180, 180)`` instead of ``[0, 360)``.
    index
        Add a ``nino34(time)`` series.
    variables
        Which of ``tas`` and ``pr`` to include.

    Returns
    -------
    xarray.Dataset

    Examples
    --------
    >>> ds = create_test_data(ntime=12, nlat=4, nlon=8)
    >>> dict(ds.sizes), ds.tas.attrs["units"]
    ({'time': 12, 'lat': 4, 'lon': 8}, 'K')
    """
    rng = np.random.default_rng(seed)
    time = xr.date_range(start, periods=ntime, freq=freq, calendar=calendar, use_cftime=True)
    lat = np.linspace(-75.0, 75.0, nlat)
    lat = lat[::-1] if descending_lat else lat
    lon = np.arange(nlon) * 360.0 / nlon - (180.0 if lon_180 else 0.0)
    step = np.arange(ntime, dtype=float)[:, None, None]
    grid = ("time", "lat", "lon")
    data: dict[str, Any] = {}
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


def tiny_archive(
    path: str | Path, *, seed: int = 0, ntime: int = 96, nlat: int = 8, nlon: int = 16
) -> Path:
    """Write a small monthly archive: ``tas``, ``pr`` and an ``sst`` that is NaN north of 40°N.

    Eight years (2000-2007 by default) on a global 8x16 grid, noleap calendar; ``tas`` is
    :func:`create_test_data`'s with seeded noise, ``sst = tas - 5`` over the "ocean".

    Parameters
    ----------
    path
        The NetCDF file to write.
    seed, ntime, nlat, nlon
        As for :func:`create_test_data`.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
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


def tiny_annual_archive(path: str | Path, *, years: int = 30, seed: int = 0) -> Path:
    """Write ``tas`` (K) on a regional 8x12 grid, one step a year from 1990, with a trend.

    The time axis is a 360-day calendar (as in the bundled Met Office files), each step on
    1 July; ``tas`` falls with latitude, warms by 0.03 K a year and carries seeded noise.

    Parameters
    ----------
    path
        The NetCDF file to write.
    years
        Number of annual steps.
    seed
        Seed of the noise.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
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


def tiny_config(path: str | Path, *sets: str) -> Config:
    """A config for :func:`tiny_archive` that trains in seconds.

    Inputs ``tas`` and ``sst``; train 2000-2004, validate 2005, test 2006-2007; batches
    of 8; width 8 and depth 1; two epochs; no progress bar. ``sets`` are ``--set``
    overrides (``"task.kind=downscale"``) applied after these.

    Parameters
    ----------
    path
        The data file.
    *sets
        ``key=value`` overrides, values parsed as YAML.

    Returns
    -------
    Config
    """
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
