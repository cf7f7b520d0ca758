"""Messy multi-source archives a climate scientist brings: grids across the 0° seam,
descending latitudes, mixed units and calendars, typos in the config (red team)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from climatune.config import load_config
from climatune.data.sources import open_sources
from climatune.data.view import build_view
from climatune.errors import ClimatuneError
from climatune.workflows.evaluate import target_units


def field(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """A smooth field (K) whose value is known at any point."""
    la, lo = np.deg2rad(lat)[:, None], np.deg2rad(lon)[None, :]
    return 280.0 + 20.0 * np.cos(la) + 3.0 * np.sin(lo)


def write_store(path, lat, lon, *, calendar="noleap", units="K", years=(1980, 1983)):
    """A noise-free monthly ``tas`` on the given axes (descending or -180..180 as given)."""
    time = xr.date_range(
        f"{years[0]}-01", periods=12 * (years[1] - years[0] + 1), freq="MS",
        calendar=calendar, use_cftime=True,
    )  # fmt: skip
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    tas = np.broadcast_to(field(lat, lon), (time.size, lat.size, lon.size))
    data = tas - 273.15 if units == "degC" else tas
    xr.Dataset(
        {"tas": (("time", "lat", "lon"), data.astype("float32"), {"units": units})},
        coords={"time": time, "lat": lat, "lon": lon},
    ).to_netcdf(path)
    return str(path)


def write_config(path, sources: str, extra: str = "") -> str:
    path.write_text(
        f"data:\n  sources:\n{sources}{extra}  variables: [tas]\n"
        "  split: {train: [1980, 1981], val: [1982, 1982], test: [1983, 1983]}\n"
        "task: {kind: forecast, history: 1, lead: 1}\n"
    )
    return str(path)


def test_an_explicit_grid_across_0_keeps_its_neighbours_together(tmp_path):
    """data.grid lon [-40, 30, 10] read from a 0..360 source and a -180..180 one with
    descending latitudes in degC: longitudes run -40..30 (as a file's do after
    canonicalisation, so maps and crops see neighbours side by side), not 320..350, 0..30,
    and every cell holds the source's value there."""
    a = write_store(tmp_path / "a.nc", np.arange(-30, 31, 10), np.arange(0, 360, 10))
    b = write_store(
        tmp_path / "b.nc", np.arange(30, -31, -10), np.arange(-180, 180, 10),
        calendar="360_day", units="degC",
    )  # fmt: skip
    cfg = write_config(
        tmp_path / "c.yaml",
        f"    - {{name: a, path: {a}}}\n    - {{name: b, path: {b}}}\n",
        "  grid: {lat: [-20, 20, 10], lon: [-40, 30, 10]}\n",
    )
    ds = open_sources(load_config(cfg).data).load()
    assert ds.lon.values.tolist() == list(np.arange(-40.0, 31.0, 10.0))
    want = field(np.arange(-20.0, 21, 10), np.arange(-40.0, 31, 10))
    for name in ("a", "b"):
        got = ds.tas.isel(time=np.flatnonzero(ds.source.values == name)).values
        np.testing.assert_allclose(got, np.broadcast_to(want, got.shape), atol=1e-3)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        # a typo inside a list item: the close key, with the item's index
        (
            "data.sources=[{name: a, path: a.nc, regird: conservative}]",
            "unknown config key 'data.sources.0.regird' in --set "
            "(did you mean 'data.sources.0.regrid'?)",
        ),
        (
            "data.sources=[{name: a, path: a.nc}, {name: b, path: b.nc, wieght: 2}]",
            "(did you mean 'data.sources.1.weight'?)",
        ),
        # a required key misspelt: named as unknown with its fix, not as 'Field required'
        (
            "data.sources=[{name: a, pth: a.nc}]",
            "unknown config key 'data.sources.0.pth' in --set (did you mean 'data.sources.0.path'?)",
        ),
        # a per-variable method: the variable's key, not pydantic's union tag
        (
            "data.sources=[{name: a, path: a.nc, regrid: {tas: conservatve}}]",
            "config key 'data.sources.0.regrid.tas' in --set: Input should be 'bilinear' or "
            "'conservative' (got 'conservatve')",
        ),
    ],
)
def test_config_typos_in_a_source_name_the_close_key(override, message):
    with pytest.raises(ClimatuneError) as info:
        load_config(None, [override])
    assert message in str(info.value)


def test_a_source_in_degc_is_converted_and_says_so(tmp_path, caplog):
    """The conversion of a source's units to the first source's is reported on stderr
    (a note, as for any conversion), and the values are exact."""
    a = write_store(tmp_path / "a.nc", np.arange(-30, 31, 10), np.arange(0, 360, 30))
    b = write_store(tmp_path / "b.nc", np.arange(-30, 31, 10), np.arange(0, 360, 30), units="degC")
    cfg = write_config(
        tmp_path / "c.yaml", f"    - {{name: a, path: {a}}}\n    - {{name: b, path: {b}}}\n"
    )
    with caplog.at_level("WARNING", logger="climatune"):
        ds = open_sources(load_config(cfg).data).load()
    assert "note: source b: units converted: tas: degC -> K" in caplog.messages
    b_only = ds.tas.isel(time=np.flatnonzero(ds.source.values == "b"))
    np.testing.assert_allclose(b_only.values[0], field(ds.lat.values, ds.lon.values), atol=1e-4)


def test_a_mapping_that_reads_one_variable_twice_is_refused(tmp_path):
    """``{tas: t2m, sst: t2m}`` kept only one of the names: tas was fed as missing."""
    a = write_store(tmp_path / "a.nc", np.arange(-30, 31, 10), np.arange(0, 360, 30))
    ds = xr.open_dataset(a).rename(tas="t2m")
    ds.to_netcdf(tmp_path / "c.nc")
    cfg = write_config(
        tmp_path / "c.yaml",
        f"    - {{name: c, path: {tmp_path / 'c.nc'}, variables: {{tas: t2m, sst: t2m}}}}\n",
    )
    with pytest.raises(ClimatuneError, match="source 'c' maps its variable 't2m' to tas and sst"):
        open_sources(load_config(cfg).data)


def test_annual_and_monthly_sources_are_refused(tmp_path):
    """An annual source beside a monthly one: its steps were labelled with the month of
    their date and entered that month's climatology as if they were monthly values."""
    a = write_store(tmp_path / "a.nc", np.arange(-30, 31, 10), np.arange(0, 360, 30))
    monthly = xr.open_dataset(a)  # noleap: cftime dates
    monthly.isel(time=slice(6, None, 12)).to_netcdf(tmp_path / "y.nc")  # one step a year
    cfg = write_config(
        tmp_path / "c.yaml",
        f"    - {{name: a, path: {a}}}\n    - {{name: y, path: {tmp_path / 'y.nc'}}}\n",
    )
    with pytest.raises(
        ClimatuneError, match="source 'y' has steps of years but source 'a' of months"
    ):
        open_sources(load_config(cfg).data)


def test_an_index_target_is_reported_in_its_series_units(tmp_path):
    """An index averaged from a field that is not an input (sst from t2m inputs): evaluate
    printed its RMSE and CRPS without units, looking for them among the input fields."""
    path = write_store(tmp_path / "a.nc", np.arange(-30, 31, 10), np.arange(0, 360, 30))
    ds = xr.open_dataset(path).load()
    ds["sst"] = (ds.tas + 1.0).assign_attrs(units="K")
    ds.rename(tas="t2m").to_netcdf(tmp_path / "b.nc")
    cfg = load_config(
        None,
        [
            f"data.path={tmp_path / 'b.nc'}",
            "data.variables=[t2m]",
            "data.split={train: [1980, 1981], val: [1982, 1982], test: [1983, 1983]}",
            "task={kind: index, history: 1, lead: 0, index: {variable: sst, "
            "region: {lat: [-10, 10], lon: [-40, 40]}}}",
        ],
    )
    assert target_units(build_view(cfg.data, cfg.task)) == {"sst": "K"}


def test_only_the_asked_variables_are_read_and_noted(tmp_path, caplog):
    """One source also holds ``pr``, which data.variables does not ask for: the other
    source was noted as lacking it (fed as missing) and it was carried along."""
    a = write_store(tmp_path / "a.nc", np.arange(-30, 31, 10), np.arange(0, 360, 30))
    ds = xr.open_dataset(a).load()
    ds["pr"] = (ds.tas * 0 + 1e-5).assign_attrs(units="kg m-2 s-1")
    ds.to_netcdf(tmp_path / "b.nc")
    cfg = write_config(
        tmp_path / "c.yaml",
        f"    - {{name: a, path: {a}}}\n    - {{name: b, path: {tmp_path / 'b.nc'}}}\n",
    )
    with caplog.at_level("WARNING", logger="climatune"):
        out = open_sources(load_config(cfg).data)
    assert list(out.data_vars) == ["tas"]
    assert not [m for m in caplog.messages if "lacks" in m]
