"""Tests for the synthetic GCM family (``climatune.data.gcm_family``)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import xarray as xr

from climatune.cli import main
from climatune.data.gcm_family import MEMBERS, OBS_YEARS, member_spec, write_member
from climatune.data.inspect import inspect_paths
from climatune.data.synthetic import COEFFICIENTS, ArchiveSpec, Bias, synthetic_dataset

COARSEN = 6  # 12x24, 15x30, 10x16 and 30x60: every member in a fraction of a second
CALENDARS = {"gcm-a": "noleap", "gcm-b": "360_day", "gcm-c": "gregorian", "obs": "standard"}
TAS = {"gcm-a": "tas", "gcm-b": "tas", "gcm-c": "ts", "obs": "tas"}


def _open(path) -> xr.Dataset:
    return xr.open_zarr(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))


def _tas_kelvin(ds: xr.Dataset, name: str) -> xr.DataArray:
    da = ds[name]
    return da + 273.15 if da.attrs["units"] == "degC" else da


def _mean_north_of_60s(field: xr.DataArray) -> float:
    """Area mean over 60S-90N, each cell weighted by its exact overlap with the band, so
    that grids whose cells straddle 60S differently compare fairly."""
    lat = field.lat.values
    half = 90.0 / lat.size
    lo, hi = np.maximum(lat - half, -60.0), lat + half
    w = np.clip(np.sin(np.deg2rad(hi)) - np.sin(np.deg2rad(lo)), 0, None)
    weights = xr.DataArray(w, coords={"lat": field.lat})
    return float(field.weighted(weights).mean(("lat", "lon")))


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    out = tmp_path_factory.mktemp("family") / "fam"
    argv = ["data", "synth", "--family", ",".join(MEMBERS), "--out", str(out), "--years", "3"]
    assert main([*argv, "--coarsen", str(COARSEN), "--seed", "4"]) == 0
    return out


def test_family_writes_one_store_per_member_and_an_index(family, capsys):
    assert sorted(p.name for p in family.iterdir()) == [
        "family.json",
        "gcm-a.zarr",
        "gcm-b.zarr",
        "gcm-c.zarr",
        "obs.zarr",
    ]
    index = json.loads((family / "family.json").read_text())
    assert index["seed"] == 4 and index["coarsen"] == COARSEN
    assert index["members"]["gcm-c"]["variables"]["tas"] == "ts"
    assert index["members"]["gcm-b"]["calendar"] == "360_day"


def test_members_differ_in_grid_calendar_names_and_identity(family):
    grids, coeffs = set(), set()
    for name, member in MEMBERS.items():
        ds = _open(family / f"{name}.zarr")
        nlat, nlon = member.grid[0] // COARSEN, member.grid[1] // COARSEN
        assert (ds.sizes["lat"], ds.sizes["lon"]) == (nlat, nlon), name
        np.testing.assert_allclose(np.diff(ds.lat), 180.0 / nlat)
        assert ds.lon.values[0] == 0 and ds.lon.attrs["units"] == "degrees_east"
        grids.add((nlat, nlon))
        first = ds.time.values[0]
        assert ds.time.encoding["calendar"] == CALENDARS[name] == ds.attrs["calendar"]
        assert (first.year, first.month) == (1950, 1) and ds.sizes["time"] == 36, name
        assert [t.month for t in ds.time.values[:12]] == list(range(1, 13)), name
        assert ds.attrs["model"] == name and ds.attrs["family_seed"] == 4
        assert ds.attrs["bias_offset_K"] == member.bias.offset_K
        assert json.loads(ds.attrs["coupling_coefficients"]) == member.coefficients().to_dict()
        coeffs.add(ds.attrs["coupling_coefficients"])
        assert (
            TAS[name] in ds.data_vars and ds[TAS[name]].attrs["standard_name"] == "air_temperature"
        )
    assert len(grids) == 4 and len(coeffs) == 4
    gcm_b, gcm_c = _open(family / "gcm-b.zarr"), _open(family / "gcm-c.zarr")
    assert "sst" not in gcm_b and gcm_b.tos.attrs["units"] == "degC"
    assert "tas" not in gcm_c and gcm_c.ts.attrs["units"] == "degC"
    global_mean = gcm_c.ts.weighted(np.cos(np.deg2rad(gcm_c.lat))).mean()
    assert 5 < float(global_mean) < 15  # the global mean near-surface temperature in degC
    assert gcm_b.time.values[1].day == 16 and gcm_b.time.values[1].month == 2  # 30-day months


def test_internal_variability_differs_between_members():
    a = synthetic_dataset(0, spec=member_spec("gcm-a", 2, 0, coarsen=COARSEN))
    b = synthetic_dataset(0, spec=member_spec("gcm-b", 2, 0, coarsen=COARSEN))
    assert abs(np.corrcoef(a.nino34.values, b.nino34.values)[0, 1]) < 0.6


def test_same_seed_identical_other_seed_differs(family, tmp_path):
    again = write_member(tmp_path / "c.zarr", "gcm-c", years=3, seed=4, coarsen=COARSEN)
    other = write_member(tmp_path / "c5.zarr", "gcm-c", years=3, seed=5, coarsen=COARSEN)
    a, b, c = _open(family / "gcm-c.zarr"), _open(again), _open(other)
    for name in ("ts", "sst", "siconc", "zg", "nino34"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
        assert not np.array_equal(a[name].values, c[name].values, equal_nan=True), name
    assert a.attrs == b.attrs


def test_bias_is_exactly_the_stated_field():
    spec = member_spec("gcm-c", 1, 0, coarsen=COARSEN)
    biased = synthetic_dataset(0, spec=spec)
    unbiased = synthetic_dataset(0, spec=dataclasses.replace(spec, bias=None))
    field = spec.bias.field(biased.lat.values, biased.lon.values)
    np.testing.assert_allclose(
        (biased.ts - unbiased.ts).values, np.broadcast_to(field, biased.ts.shape), atol=1e-4
    )
    weights = np.cos(np.deg2rad(biased.lat.values))[:, None] * np.ones(biased.lon.size)
    assert np.average(field, weights=weights) == pytest.approx(spec.bias.offset_K, abs=0.01)
    assert np.std(field) > 0.5 * spec.bias.pattern_K  # a pattern, not only an offset


def test_bias_pattern_is_one_field_on_every_grid():
    bias = Bias(offset_K=0.0, pattern_K=2.0, pattern_seed=9)
    lat, lon = np.array([10.0, 40.0]), np.array([30.0, 200.0])
    fine_lat = np.arange(-89.5, 90.0, 1.0)
    fine = bias.field(fine_lat, np.arange(360.0))
    assert bias.field(lat, lon)[1, 0] == pytest.approx(
        bias.field(fine_lat + 0.5, np.arange(360.0))[129, 30]
    )
    weights = np.cos(np.deg2rad(fine_lat))[:, None] * np.ones(360)
    assert np.sqrt(np.average(fine**2, weights=weights)) == pytest.approx(2.0, rel=0.01)


def test_climatologies_differ_by_their_stated_biases(family):
    obs_ds = _open(family / "obs.zarr")
    obs = _mean_north_of_60s(obs_ds.tas.mean("time"))
    for name in ("gcm-a", "gcm-b", "gcm-c"):
        ds = _open(family / f"{name}.zarr")
        clim = _tas_kelvin(ds, TAS[name]).mean("time")
        bias = MEMBERS[name].bias.field(ds.lat.values, ds.lon.values)
        stated = _mean_north_of_60s(xr.DataArray(bias, coords=clim.coords))
        assert abs(stated - MEMBERS[name].bias.offset_K) < 0.3, name
        assert _mean_north_of_60s(clim) - obs == pytest.approx(stated, abs=0.3), name


def test_obs_is_the_last_years_with_gaps_in_the_standard_calendar():
    ds = synthetic_dataset(0, spec=member_spec("obs", OBS_YEARS + 5, 0, coarsen=COARSEN))
    first, last = ds.time.values[0], ds.time.values[-1]
    assert first.calendar == "standard" and (first.year, last.year) == (1955, 1994)
    assert ds.attrs["family_start_year"] == 1950 and ds.attrs["model"] == "obs"
    assert ds.attrs["coupling_coefficients"] == json.dumps(COEFFICIENTS.to_dict(), sort_keys=True)
    gaps = ds.tas.isnull()
    assert bool((gaps == gaps.isel(time=0)).all())  # the same cells at every step
    assert bool(gaps.isel(time=0).where(ds.lat < -75, True).all())
    north = gaps.isel(time=0).where(ds.lat > -75, drop=True)
    assert 0.0 < float(north.mean()) < 0.06
    assert not ds.zg.isnull().any() and not ds.nino34.isnull().any()


def test_obs_carries_the_warming_from_the_family_start():
    """The obs record starts late, yet its forcing is the family's: warmer than the GCM's
    first years by the trend times the years in between."""
    early = member_spec("obs", 3, 0, coarsen=COARSEN)
    late = dataclasses.replace(early, start_year=2040)  # forcing from 1950: 90 years on
    a, b = (synthetic_dataset(0, spec=s).tas.mean() for s in (early, late))
    assert float(b - a) > 90 * COEFFICIENTS.trend_equator_K_per_year


@pytest.mark.parametrize(
    "calendar, freq, steps",
    [("360_day", "daily", 720), ("standard", "daily", 731), ("gregorian", "monthly", 24)],
)
def test_calendars_of_the_time_axis(calendar, freq, steps):
    spec = ArchiveSpec(years=2, grid=(8, 16), freq=freq, seed=1, start_year=1951, calendar=calendar)
    ds = synthetic_dataset(0, spec=spec)
    assert ds.sizes["time"] == steps and ds.time.values[0].calendar in (calendar, "standard")
    assert ds.time.values[-1].year == 1952 and not ds.tas.isnull().any()


def test_generic_calendar_path_matches_noleap():
    """365_day takes the general calendar path; it is the noleap archive to rounding."""
    noleap = synthetic_dataset(2, (8, 16), seed=2)
    other = synthetic_dataset(
        0, spec=ArchiveSpec(years=2, grid=(8, 16), seed=2, calendar="365_day")
    )
    np.testing.assert_allclose(other.tas.values, noleap.tas.values, atol=1e-3)
    np.testing.assert_array_equal(
        other.time.encoding.get("units"), noleap.time.encoding.get("units")
    )


def test_inspect_reads_every_member(family):
    for name in MEMBERS:
        rows = {r["variable"]: r for r in inspect_paths([str(family / f"{name}.zarr")])}
        row = rows[TAS[name]]
        assert row["calendar"] == CALENDARS[name] and row["n_times"] == 36
        assert row["units"] == ("degC" if name == "gcm-c" else "K")
    assert rows["tas"]["nan_fraction"] > 0.05  # obs


def test_single_model_on_the_command_line(tmp_path, capsys):
    out = tmp_path / "b.zarr"
    argv = ["data", "synth", "--model", "gcm-b", "--out", str(out), "--years", "1"]
    assert main([*argv, "--coarsen", "3"]) == 0
    ds = _open(out)
    assert ds.attrs["model"] == "gcm-b" and (ds.sizes["lat"], ds.sizes["lon"]) == (30, 60)
    assert ds.attrs["nominal_resolution"] == "6x6 degree"


@pytest.mark.parametrize(
    "flags",
    [
        ["--model", "gcm-z"],
        ["--model", "gcm-a", "--family", "gcm-b"],
        ["--model", "gcm-a", "--grid", "16x32"],
        ["--model", "gcm-b", "--coarsen", "4"],
        ["--model", "gcm-a", "--coarsen", "0"],
        ["--coarsen", "2"],
        ["--family", "gcm-a,gcm-a"],
        ["--family", "gcm-a,,nope"],
        ["--family", ","],
        ["--family", "gcm-a,obs", "--years", "0"],
    ],
)
def test_cli_bad_model_arguments(tmp_path, capsys, flags):
    argv = ["data", "synth", "--out", str(tmp_path / "x"), "--years", "1", *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("climatune: error: ")
    assert list(tmp_path.iterdir()) == []


def test_family_never_replaces_an_existing_folder(tmp_path, capsys):
    (tmp_path / "fam").mkdir()
    (tmp_path / "fam" / "mine.txt").write_text("keep")
    argv = ["data", "synth", "--family", "obs", "--out", str(tmp_path / "fam"), "--years", "1"]
    assert main([*argv, "--coarsen", "6"]) == 2
    assert (tmp_path / "fam" / "mine.txt").read_text() == "keep"
    assert sorted(p.name for p in (tmp_path / "fam").iterdir()) == ["mine.txt"]


def test_a_failed_family_leaves_nothing(tmp_path, monkeypatch):
    import climatune.data.gcm_family as family_module

    real, written = family_module.fill_store, []

    def fill_then_fail(path, spec):
        if written:
            raise RuntimeError("disk on fire")
        written.append(path)
        real(path, spec)

    monkeypatch.setattr(family_module, "fill_store", fill_then_fail)
    with pytest.raises(RuntimeError):
        family_module.write_family(tmp_path / "fam", ["gcm-c", "obs"], years=1, coarsen=COARSEN)
    assert written and list(tmp_path.iterdir()) == []
