"""Grid helpers: the downscaling input keeps every valid cell of a field with NaN cells."""

from __future__ import annotations

import numpy as np
import xarray as xr

from climatune.data.grid import bilinear_to, coarsen, coarsen_bilinear


def _plane(nlat: int = 16, nlon: int = 32) -> xr.DataArray:
    """``2 lat + lon / 10`` on a regular grid: bilinear interpolation reproduces it exactly."""
    lat = np.linspace(-60.0, 60.0, nlat)
    lon = np.arange(nlon) * 360.0 / nlon
    values = 2 * lat[:, None] + lon[None, :] / 10
    return xr.DataArray(values, coords={"lat": lat, "lon": lon}, dims=("lat", "lon"))


def test_without_nan_the_interpolation_is_exact_on_a_plane():
    field = _plane()
    coarse = coarsen(field, 2)
    assert bool(bilinear_to(coarse, field.lat, field.lon).notnull().all())  # edges too
    inside = (field.lat > coarse.lat.min()) & (field.lat < coarse.lat.max())
    inside = inside & (field.lon > coarse.lon.min()) & (field.lon < coarse.lon.max())
    got = coarsen_bilinear(field, 2).where(inside)
    np.testing.assert_allclose(got.values, field.where(inside).values, atol=1e-9)


def test_nan_cells_do_not_eat_into_their_valid_neighbours():
    field = _plane()
    land = (field.lat > 0) & (field.lon > 90) & (field.lon < 200)
    sst = field.where(~land)
    got = coarsen_bilinear(sst, 2)
    # every valid cell keeps a value (a coast used to turn its neighbours NaN) ...
    assert bool(got.where(~land).notnull().sum() == (~land).sum())
    # ... between its valid coarse neighbours, and exact where none of them is land
    coarse = coarsen(sst, 2)
    lo, hi = float(coarse.min()), float(coarse.max())
    assert float(got.min()) >= lo - 1e-9 and float(got.max()) <= hi + 1e-9
    far = ~land & ((field.lat < -10) | (field.lon < 60) | (field.lon > 230))
    inside = (field.lat > coarse.lat.min()) & (field.lat < coarse.lat.max())
    far = far & inside & (field.lon > coarse.lon.min()) & (field.lon < coarse.lon.max())
    np.testing.assert_allclose(got.where(far).values, field.where(far).values, atol=1e-9)
    # a block of land wider than the interpolation stencil stays NaN inside
    assert bool(got.sel(lat=45, lon=146.25, method="nearest").isnull())
