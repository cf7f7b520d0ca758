"""Selecting variables, levels and years; NaN and inf checks."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from climatune.data.selection import (
    check_finite,
    check_not_all_nan,
    level_name,
    require_variables,
    select,
)
from climatune.errors import ClimatuneError


@pytest.fixture
def ds(make_test_dataset) -> xr.Dataset:
    """Three years of monthly tas, pr and z on 1000/850/500 hPa, Dask-backed."""
    return make_test_dataset(ntime=36, nlevel=3, index=True).chunk(time=12)


def test_require_variables(ds):
    require_variables(ds, ["tas", "z"])
    two = ds[["tas", "pr"]]
    with pytest.raises(ClimatuneError) as err:
        require_variables(two, ["sst"])
    assert str(err.value) == "variable 'sst' missing; the file has: tas, pr"
    with pytest.raises(ClimatuneError, match=r"variable 'ts' missing \(did you mean 'tas'\?\)"):
        require_variables(two, ["ts"])
    with pytest.raises(ClimatuneError, match="variables 'a', 'b' missing; the file has: tas, pr"):
        require_variables(two, ["tas", "a", "b"])


def test_select_variables_keeps_order_and_coords(ds):
    out = select(ds, variables=["pr", "tas"])
    assert list(out.data_vars) == ["pr", "tas"]
    assert out.tas.attrs["units"] == "K" and "level" not in out.dims
    with pytest.raises(ClimatuneError, match="variable 'sst' missing"):
        select(ds, variables=["tas", "sst"])


def test_select_levels_splits_fields_per_level(ds):
    out = select(ds, variables=["tas", "z"], levels={"z": [500, 850]})
    assert sorted(out.data_vars) == ["tas", "z500", "z850"]
    assert out.z500.dims == ("time", "lat", "lon") and "level" not in out.dims
    np.testing.assert_allclose(out.z500.values, ds.z.sel(level=500).values)
    np.testing.assert_allclose(out.z850.isel(time=0, lon=0).values, 850 + ds.lat.values)
    assert out.z500.attrs["level"] == 500 and out.z500.attrs["units"] == "m"


def test_unselected_level_variables_keep_their_level_dim(ds):
    ds2 = ds.assign(t=ds.z + 1)
    out = select(ds2, levels={"z": [500]})
    assert out.t.dims == ("time", "level", "lat", "lon") and out.sizes["level"] == 3
    assert out.z500.dims == ("time", "lat", "lon")


def test_level_errors(ds):
    with pytest.raises(
        ClimatuneError,
        match=r"level 300 of 'z' is not in the file; available "
        r"levels: 1000, 850, 500 hPa",
    ):
        select(ds, levels={"z": [500, 300]})
    with pytest.raises(ClimatuneError, match="'tas' has no level dimension"):
        select(ds, levels={"tas": [500]})
    with pytest.raises(ClimatuneError, match="not among the selected variables"):
        select(ds, variables=["tas"], levels={"z": [500]})
    with pytest.raises(ClimatuneError, match="non-empty list"):
        select(ds, levels={"z": 500})


@pytest.mark.parametrize(("units", "factor"), [("Pa", 100.0), ("mbar", 1.0)])
def test_pressure_levels_in_other_units_select_the_hpa_level(ds, units, factor, caplog):
    """A file whose levels are in Pa (or mbar) serves a config that asks for hPa."""
    other = ds.assign_coords(level=("level", ds.level.values * factor, {"units": units}))
    with caplog.at_level("WARNING", logger="climatune"):
        out = select(other, variables=["tas", "z"], levels={"z": [850, 500]})
    assert list(out.data_vars) == ["tas", "z850", "z500"]
    np.testing.assert_array_equal(out.z500.values, ds.z.sel(level=500).values)
    np.testing.assert_array_equal(out.z850.isel(time=0, lon=0).values, 850 + ds.lat.values)
    assert out.z500.attrs["level"] == 500.0 and out.z500.attrs["level_units"] == "hPa"
    assert f"level: {units} -> hPa" in caplog.text
    with pytest.raises(ClimatuneError, match=r"level 300 of 'z' .* levels: 1000, 850, 500 hPa"):
        select(other, levels={"z": [300]})


def test_level_name():
    assert level_name("z", 500.0) == "z500"
    assert level_name("t", 0.5) == "t0.5"


def test_select_years_inclusive(ds):
    out = select(ds, years=(2001, 2002))
    assert out.sizes["time"] == 24
    assert out.time.dt.year.values[[0, -1]].tolist() == [2001, 2002]
    assert select(ds, years=[2000, 2000]).sizes["time"] == 12


def test_select_years_errors(ds):
    with pytest.raises(
        ClimatuneError, match="no times in the years 1990-1995; the file covers 2000-2002"
    ):
        select(ds, years=(1990, 1995))
    with pytest.raises(ClimatuneError, match="reversed"):
        select(ds, years=(2002, 2000))
    with pytest.raises(ClimatuneError, match="no time dimension"):
        select(ds.isel(time=0, drop=True), years=(2000, 2001))


def test_select_on_sample_a1b():
    from climatune.data.io import open_dataset

    out = select(
        open_dataset("sample://A1B_north_america"),
        variables=["air_temperature"],
        years=(1950, 1999),
    )
    assert out.sizes["time"] == 50


def test_check_not_all_nan(ds):
    partly = ds.assign(tas=ds.tas.where(ds.lat > 0))
    check_not_all_nan(partly)  # land-like NaN cells are fine
    empty = ds.assign(pr=ds.pr * np.nan, tas=ds.tas * np.nan)
    assert empty.pr.chunks is not None  # still lazy: the check computes with Dask
    with pytest.raises(ClimatuneError, match=r"variable 'tas' is entirely NaN \(so are pr\)"):
        check_not_all_nan(empty)


def test_check_finite(ds):
    check_finite(ds.assign(tas=ds.tas.where(ds.lat > 0)))  # NaN is not an error
    bad = ds.tas.copy(data=ds.tas.values.copy())
    bad[0, 0, 0], bad[1, 2, 3] = np.inf, -np.inf
    with pytest.raises(ClimatuneError, match=r"infinite values in 'tas' \(2 values\)"):
        check_finite(ds.assign(tas=bad))
