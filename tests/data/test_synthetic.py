"""Tests for the synthetic coupled climate archive (``climatune.data.synthetic``)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import xarray as xr

import climatune.data.synthetic as synth
from climatune.cli import main
from climatune.data.synthetic import (
    COEFFICIENTS,
    parse_grid,
    synthetic_dataset,
    write_synthetic,
)
from climatune.errors import ClimatuneError

FIELDS = {
    "tas": ("K", "air_temperature"),
    "sst": ("K", "sea_surface_temperature"),
    "siconc": ("1", "sea_ice_area_fraction"),
    "zg": ("m", "geopotential_height"),
    "nino34": ("K", "surface_temperature_anomaly"),
    "orography": ("m", "surface_altitude"),
}


def _open(path) -> xr.Dataset:
    return xr.open_zarr(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))


def _box(ds: xr.Dataset, box: str) -> xr.DataArray:
    """Boolean (lat, lon) mask of the cell centres inside ``"lat=a:b,lon=c:d"``."""
    a, b, c, d = synth._box(box)
    lat, lon = ds.lat, ds.lon
    return (lat >= a) & (lat <= b) & (lon >= c) & (lon <= d)


def _region_anomaly(ds: xr.Dataset, box: str) -> np.ndarray:
    """Area-weighted tas over ``box``, minus its monthly climatology and linear trend."""
    inside = _box(ds, box)
    weights = np.cos(np.deg2rad(ds.lat)) * inside
    series = ds.tas.weighted(weights).mean(("lat", "lon"))
    anom = (series.groupby("time.month") - series.groupby("time.month").mean()).values
    t = np.arange(anom.size)
    return anom - np.polyval(np.polyfit(t, anom, 1), t)


def _lag_corr(a: np.ndarray, b: np.ndarray, lag: int) -> float:
    """Correlation of a(t) with b(t - lag)."""
    return float(np.corrcoef(a[lag:], b[: a.size - lag])[0, 1])


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "s.zarr"
    assert write_synthetic(path, years=3, grid=(16, 32), seed=5) == path
    return path


@pytest.fixture(scope="module")
def ds(store) -> xr.Dataset:
    return _open(store).load()


@pytest.fixture(scope="module")
def long_ds() -> xr.Dataset:
    """30 monthly years on 16x32: enough ENSO cycles for stable lagged correlations."""
    return synthetic_dataset(30, (16, 32), seed=0)


# --- parse_grid and argument checks ------------------------------------------------------


@pytest.mark.parametrize(
    "text, grid", [("64x128", (64, 128)), (" 16 X 32 ", (16, 32)), ("8x16", (8, 16))]
)
def test_parse_grid(text, grid):
    assert parse_grid(text) == grid


@pytest.mark.parametrize(
    "text", ["64", "0x10", "abc", "", "4x8", "8x8", "7x16", "64x128x2", "-8x16", "1.5x16", "9999x9"]
)
def test_parse_grid_rejects_nonsense(text):
    with pytest.raises(ClimatuneError, match="grid"):
        parse_grid(text)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"years": 0},
        {"years": -3},
        {"years": 2001},
        {"years": 2.5},
        {"freq": "hourly"},
        {"seed": -1},
        {"grid": (4, 8)},
    ],
)
def test_write_rejects_bad_arguments(tmp_path, kwargs):
    args = {"years": 1, "grid": (8, 16)} | kwargs
    with pytest.raises(ClimatuneError):
        write_synthetic(tmp_path / "bad.zarr", **args)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(self, n):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(synth._Generator, "block", boom)
    with pytest.raises(RuntimeError):
        write_synthetic(tmp_path / "s.zarr", years=1, grid=(8, 16))
    assert list(tmp_path.iterdir()) == []


# --- structure and CF metadata ------------------------------------------------------------


def test_store_has_cf_variables(ds):
    assert set(FIELDS) <= set(ds.data_vars)
    assert ds.attrs["Conventions"] == "CF-1.8"
    for name, (units, standard_name) in FIELDS.items():
        attrs = ds[name].attrs
        assert attrs["units"] == units, name
        assert attrs["standard_name"] == standard_name, name
        assert attrs["long_name"], name
        assert ds[name].dtype == np.float32, name
    assert ds.tas.dims == ("time", "lat", "lon")
    assert ds.zg.dims == ("time", "level", "lat", "lon")
    assert ds.nino34.dims == ("time",)
    assert ds.orography.dims == ("lat", "lon")
    assert ds.level.values.tolist() == [500.0]
    assert ds.level.attrs["units"] == "hPa"
    assert ds.level.attrs["standard_name"] == "air_pressure"


def test_grid_and_calendar(ds):
    lat, lon = ds.lat.values, ds.lon.values
    assert ds.sizes == {"time": 36, "lat": 16, "lon": 32, "level": 1}
    assert np.all(np.diff(lat) > 0) and np.allclose(lat, -lat[::-1])
    assert -90 < lat[0] < -80 and lon[0] == 0 and lon[-1] < 360
    assert ds.lat.attrs["units"] == "degrees_north" and ds.lon.attrs["units"] == "degrees_east"
    first, second = ds.time.values[:2]
    assert first.calendar == "noleap"
    assert (first.year, first.month, first.day, first.hour) == (1950, 1, 16, 12)
    assert (second.month, second.day, second.hour) == (2, 15, 0)
    assert [t.month for t in ds.time.values[:12]] == list(range(1, 13))


def test_coefficients_in_attrs(ds):
    coeffs = json.loads(ds.attrs["coupling_coefficients"])
    assert coeffs == COEFFICIENTS.to_dict()
    for key, value in coeffs.items():
        assert ds.attrs[key] == value
    assert ds.attrs["enso_teleconnection_region"] == "lat=30:60,lon=230:270"
    assert ds.attrs["enso_teleconnection_lag_steps"] == 3
    assert ds.attrs["seed"] == 5


# --- land, ocean and ice -----------------------------------------------------------------


def test_sst_nan_exactly_on_land(ds):
    land = ds.sst.isnull()
    assert bool((land == land.isel(time=0)).all()), "the land mask must not change in time"
    land0 = land.isel(time=0)
    assert 0.15 < float(land0.mean()) < 0.6
    assert bool((ds.siconc.isnull() == land).all())
    assert bool(np.isfinite(ds.tas).all()) and bool(np.isfinite(ds.zg).all())
    assert bool(np.isfinite(ds.nino34).all())
    assert bool((ds.orography.where(land0) > 0).sum() == land0.sum())
    assert bool((ds.orography.where(~land0) == 0).sum() == (~land0).sum())
    assert not bool(land0.where(_box(ds, COEFFICIENTS.tropical_pacific_ocean_region), False).any())
    region = _box(ds, COEFFICIENTS.enso_teleconnection_region)
    assert bool(region.any()) and bool(land0.where(region, True).all())


def test_land_mask_is_fixed_across_seeds():
    a = synthetic_dataset(1, (16, 32), seed=1).sst.isel(time=0).isnull()
    b = synthetic_dataset(1, (16, 32), seed=2).sst.isel(time=0).isnull()
    assert bool((a == b).all())


def test_siconc_is_logistic_in_sst(ds):
    c = COEFFICIENTS
    sic, sst = ds.siconc.values, ds.sst.values
    ocean = np.isfinite(sst)
    assert np.nanmin(sic) >= 0 and np.nanmax(sic) <= 1
    assert np.nanmax(sic) > 0.9 and np.nanmin(sic) < 0.01, "needs both pack ice and open sea"
    expected = 1 / (1 + np.exp((sst[ocean].astype(float) - c.siconc_half_K) / c.siconc_width_K))
    np.testing.assert_allclose(sic[ocean], expected, atol=2e-5)
    assert np.nanmin(sst) > c.freezing_point_K - 0.01, "SST has a floor at freezing"


def test_ice_albedo_lowers_tas_by_coefficient_times_siconc(monkeypatch):
    base = synthetic_dataset(2, (8, 16), seed=3)
    monkeypatch.setattr(
        synth, "COEFFICIENTS", dataclasses.replace(COEFFICIENTS, ice_albedo_tas_K=0.0)
    )
    no_ice = synthetic_dataset(2, (8, 16), seed=3)
    diff = (base.tas - no_ice.tas).values
    expected = -COEFFICIENTS.ice_albedo_tas_K * base.siconc.fillna(0).values
    np.testing.assert_allclose(diff, expected, atol=1e-3)


# --- seasonal cycle and forced trend -----------------------------------------------------


def test_seasonal_cycle_opposite_hemispheres_and_larger_over_land(long_ds):
    jan, jul = (
        long_ds.tas.sel(time=long_ds.time.dt.month == 1),
        long_ds.tas.sel(time=long_ds.time.dt.month == 7),
    )
    swing = (jul.mean("time") - jan.mean("time")).load()
    north, south = swing.sel(lat=slice(40, 70)), swing.sel(lat=slice(-70, -40))
    assert float(north.mean()) > 3 and float(south.mean()) < -3
    land = long_ds.sst.isel(time=0).isnull().sel(lat=slice(40, 70))
    assert float(north.where(land).mean()) > 2 * float(north.where(~land).mean())


def test_warming_trend_positive_and_polar_amplified():
    ds = synthetic_dataset(30, (8, 16), seed=2)
    annual = ds.tas.coarsen(time=12).mean()
    years = np.arange(annual.sizes["time"])
    slopes = np.polyfit(years, annual.values.reshape(years.size, -1), 1)[0]
    slope = xr.DataArray(slopes.reshape(annual.shape[1:]), coords=[ds.lat, ds.lon])
    weights = np.cos(np.deg2rad(ds.lat))
    tropics = float(slope.where(abs(ds.lat) < 30).weighted(weights).mean())
    poles = float(slope.where(abs(ds.lat) > 60).weighted(weights).mean())
    assert 0.01 < tropics < 0.04  # 0.02 K/yr forced at the equator
    assert poles > 2 * tropics  # 2.5x forced, more over melting ice


# --- ENSO --------------------------------------------------------------------------------


def test_nino34_is_the_box_mean_sst_anomaly(long_ds):
    sst = long_ds.sst.sel(lat=slice(-6, 6), lon=slice(185, 245))
    anom = sst.groupby("time.month") - sst.groupby("time.month").mean()
    box_mean = anom.weighted(np.cos(np.deg2rad(sst.lat))).mean(("lat", "lon")).values
    t = np.arange(box_mean.size)
    box_mean = box_mean - np.polyval(np.polyfit(t, box_mean, 1), t)
    assert np.corrcoef(box_mean, long_ds.nino34.values)[0, 1] > 0.95
    assert 0.5 < float(long_ds.nino34.std()) < 1.5


def test_nino34_drives_teleconnection_region_at_documented_lag(long_ds):
    """Expected correlation ~0.89 at the lag from the coefficients on this grid.

    Region tas = 1.5 K x E(t - 3) + noise of 0.63 K (8-deg noise of 1 K averaged over the
    region), so corr(tas, E lagged) ~ 1.5 / hypot(1.5, 0.63) = 0.92; nino34 = 0.69 K x E +
    0.18 K of box-mean noise, so corr(nino34, E) ~ 0.97. Their product is 0.89; 0.75 leaves
    room for sampling error over 30 years. E's 3-month autocorrelation (~0.9) makes lag 0
    and lag 6 visibly weaker.
    """
    lag = long_ds.attrs["enso_teleconnection_lag_steps"]
    tas = _region_anomaly(long_ds, long_ds.attrs["enso_teleconnection_region"])
    nino = long_ds.nino34.values
    at_lag = _lag_corr(tas, nino, lag)
    assert at_lag > 0.75
    assert at_lag > _lag_corr(tas, nino, 0) + 0.02
    assert at_lag > _lag_corr(tas, nino, 2 * lag) + 0.02


def test_enso_is_the_only_interannual_driver_of_the_region(monkeypatch):
    """With the teleconnection switched off, the region's tas is unrelated to ENSO."""
    monkeypatch.setattr(
        synth, "COEFFICIENTS", dataclasses.replace(COEFFICIENTS, enso_tas_teleconnection_K=0.0)
    )
    ds = synthetic_dataset(30, (16, 32), seed=0)
    tas = _region_anomaly(ds, COEFFICIENTS.enso_teleconnection_region)
    corrs = [_lag_corr(tas, ds.nino34.values, lag) for lag in range(0, 7)]
    assert max(abs(c) for c in corrs) < 0.2


# --- determinism -------------------------------------------------------------------------


def test_store_equals_in_memory_dataset(ds):
    mem = synthetic_dataset(3, (16, 32), seed=5)
    for name in FIELDS:
        np.testing.assert_array_equal(ds[name].values, mem[name].values, err_msg=name)
    assert list(ds.time.values) == list(mem.time.values)


def test_same_seed_identical_other_seed_differs():
    a = synthetic_dataset(2, (8, 16), seed=11)
    b = synthetic_dataset(2, (8, 16), seed=11)
    c = synthetic_dataset(2, (8, 16), seed=12)
    for name in ("tas", "sst", "siconc", "zg", "nino34"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
        assert not np.array_equal(a[name].values, c[name].values, equal_nan=True), name


def test_independent_of_block_size(monkeypatch):
    a = synthetic_dataset(3, (8, 16), seed=4)
    monkeypatch.setattr(synth, "_BLOCK_CELLS", 500)  # 3 steps per block instead of 36
    b = synthetic_dataset(3, (8, 16), seed=4)
    for name in ("tas", "sst", "siconc", "zg", "nino34"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_daily_archive(tmp_path):
    path = write_synthetic(tmp_path / "d.zarr", years=1, grid=(8, 16), freq="daily", seed=1)
    ds = _open(path)
    assert ds.sizes["time"] == 365 and ds.attrs["frequency"] == "day"
    assert ds.attrs["enso_teleconnection_lag_steps"] == 91
    last = ds.time.values[-1]
    assert last.calendar == "noleap" and (last.month, last.day, last.hour) == (12, 31, 12)


# --- command line ------------------------------------------------------------------------


def test_cli_writes_store(tmp_path, capsys):
    out = tmp_path / "cli.zarr"
    assert main(["data", "synth", "--out", str(out), "--years", "2", "--grid", "16x32"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert _open(out).sizes["time"] == 24


@pytest.mark.parametrize(
    "flags",
    [
        ["--years", "2", "--grid", "64"],
        ["--years", "2", "--grid", "4x8"],
        ["--years", "0", "--grid", "16x32"],
        ["--years", "5000"],
        ["--years", "2", "--freq", "hourly"],
    ],
)
def test_cli_bad_arguments(tmp_path, capsys, flags):
    out = tmp_path / "bad.zarr"
    assert main(["data", "synth", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("climatune: error: ")
    assert list(tmp_path.iterdir()) == []
