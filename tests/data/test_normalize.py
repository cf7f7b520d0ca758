"""Normalizer: fitted on training steps only, NaN kept, round trip exact."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from climatune.data.normalize import Normalizer
from climatune.data.samples import TaskSamples, fit_normalizer, normalization_mode
from climatune.data.settings import DataConfig, TaskConfig
from climatune.data.view import build_view
from climatune.errors import ClimatuneError
from climatune.testing import create_test_data


def _ds(values: np.ndarray) -> xr.Dataset:
    return xr.Dataset({"tas": (("time", "lat", "lon"), values, {"units": "K"})})


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, (3, 2, 4), elements=st.floats(-1e4, 1e4, allow_nan=False)))
def test_round_trip_returns_the_input(values):
    ds = _ds(values)
    norm = Normalizer().fit(ds)
    back = norm.inverse_transform(norm.transform(ds))
    np.testing.assert_allclose(
        back.tas.values, values, rtol=1e-9, atol=1e-6 * (1 + np.abs(values).max())
    )


def test_statistics_ignore_nan_and_keep_it():
    values = np.array([[[1.0, np.nan], [3.0, 5.0]]])
    ds = _ds(values)
    norm = Normalizer().fit(ds)
    assert norm.mean_["tas"] == pytest.approx(3.0)
    assert norm.std_["tas"] == pytest.approx(np.std([1.0, 3.0, 5.0]))
    assert np.isnan(norm.transform(ds).tas.values[0, 0, 1])


def test_fit_uses_only_what_it_is_given():
    values = np.concatenate([np.zeros((5, 1, 1)), np.full((5, 1, 1), 100.0)])
    ds = _ds(values)
    assert Normalizer().fit(ds.isel(time=slice(0, 5))).mean_["tas"] == 0.0


def test_dict_round_trip_and_merge_policy():
    a = Normalizer().fit(_ds(np.arange(8.0).reshape(2, 2, 2)))
    b = Normalizer().fit(_ds(np.arange(8.0).reshape(2, 2, 2) + 10))
    again = Normalizer.from_dict(a.to_dict())
    assert again.mean_ == a.mean_ and again.units_ == {"tas": "K"}
    assert a.merge(b, refit=[]).mean_["tas"] == a.mean_["tas"]
    assert a.merge(b, refit=["tas"]).mean_["tas"] == b.mean_["tas"]


def test_all_nan_training_data_is_an_error():
    with pytest.raises(ClimatuneError, match="all NaN"):
        Normalizer().fit(_ds(np.full((2, 2, 2), np.nan)))


@pytest.fixture
def corrupt_store(tmp_path):
    """A Zarr store whose 2003 chunk of ``tas`` does not decompress."""
    store = tmp_path / "c.zarr"
    create_test_data(ntime=96).chunk({"time": 12}).to_zarr(store, zarr_format=2)
    (store / "tas" / "3.0.0").write_bytes(b"garbage" * 8)
    return store


def test_a_corrupt_chunk_met_while_fitting_names_file_variable_and_times(corrupt_store):
    from climatune.data.io import open_dataset

    ds = open_dataset(corrupt_store)
    with pytest.raises(ClimatuneError) as err:
        Normalizer().fit(ds)
    assert str(err.value).startswith(
        f"cannot read variable 'tas' of {corrupt_store} at 2003-01-01T00:00:00 to "
        "2003-12-01T00:00:00 (error during blosc decompression"
    )


def test_a_corrupt_chunk_met_while_loading_samples_names_it(corrupt_store):
    from climatune.data.io import open_dataset
    from climatune.data.samples import read_window
    from climatune.data.view import TaskView

    ds = open_dataset(corrupt_store)
    mask = xr.ones_like(ds.lat * ds.lon, dtype=bool)
    view = TaskView("forecast", ds, ["tas"], ["tas"], 1, 1, 1, {}, mask)
    norm = Normalizer()
    norm.mean_, norm.std_, norm.units_ = {"tas": 250.0}, {"tas": 10.0}, {"tas": "K"}
    read_window(view, norm, slice(0, 24))  # 2000-2001 read fine
    with pytest.raises(
        ClimatuneError, match="cannot read variable 'tas' of .*c.zarr at 2003-01-01"
    ):
        read_window(view, norm, slice(24, 60))


RHO, SIGMA = 0.6, 0.5  # the AR(1) anomaly: lag-1 correlation and innovation std (K)


def _seasonal_ar1(years: int = 16, seed: int = 0) -> xr.Dataset:
    """Monthly ``tas`` = per-cell mean + seasonal cycle + an AR(1) anomaly, Dask-chunked."""
    rng = np.random.default_rng(seed)
    ntime, nlat, nlon = 12 * years, 4, 5
    time = xr.date_range("2000-01-01", periods=ntime, freq="MS", calendar="noleap", use_cftime=True)
    lat, lon = np.linspace(-60, 60, nlat), np.arange(nlon) * 72.0
    base = 280.0 + 0.3 * lat[:, None] + 0.01 * lon[None, :]
    amplitude = 2.0 + 0.2 * np.abs(lat)[:, None] * np.ones(nlon)
    season = amplitude * np.cos(2 * np.pi * np.arange(12) / 12)[:, None, None]
    anomaly = np.zeros((ntime, nlat, nlon))
    for t in range(1, ntime):
        anomaly[t] = RHO * anomaly[t - 1] + rng.normal(0, SIGMA, (nlat, nlon))
    tas = base + season[np.arange(ntime) % 12] + anomaly
    ds = xr.Dataset(
        {"tas": (("time", "lat", "lon"), tas.astype("f4"), {"units": "K"})},
        coords={"time": time, "lat": lat, "lon": lon},
    )
    return ds.chunk(time=24)


def _view(ds: xr.Dataset, kind: str = "forecast"):
    data = DataConfig(
        path="unused",
        variables=["tas"],
        split={"train": (2000, 2009), "val": (2010, 2011), "test": (2012, 2015)},
    )
    return build_view(data, TaskConfig(kind=kind), ds)


def test_anomaly_samples_have_zero_mean_and_unit_std_in_every_month():
    ds = _seasonal_ar1()
    view = _view(ds)
    assert normalization_mode(view) == "anomaly"
    norm = fit_normalizer(view, "anomaly")
    samples = TaskSamples(view, "train", norm)
    steps = view.steps("train")
    months = ds.time.dt.month.values[steps]
    block = samples.targets[:, 0]  # every training step, normalised
    for m in range(1, 13):
        assert abs(block[months == m].mean()) < 1e-4, m
        assert block[months == m].std() == pytest.approx(1.0, abs=0.12), m
    # the values: (x - training mean of the step's month - mean_) / std_, cell by cell
    train = ds.tas.isel(time=steps).load()
    clim = train.groupby("time.month").mean("time")
    want = (train.groupby("time.month") - clim - norm.mean_["tas"]) / norm.std_["tas"]
    np.testing.assert_allclose(block, want.values, atol=1e-4)
    np.testing.assert_allclose(norm.climatology_["tas"], clim.values, atol=1e-4)
    assert norm.std_["tas"] == pytest.approx(SIGMA / np.sqrt(1 - RHO**2), rel=0.1)
    # globally normalised, the seasonal cycle dominates every month's mean
    glob = TaskSamples(view, "train", fit_normalizer(view)).targets[:, 0]
    assert max(abs(glob[months == m].mean()) for m in range(1, 13)) > 0.3


def test_the_normalisation_mode_follows_the_task_and_the_time_step():
    monthly, annual = _seasonal_ar1(), _seasonal_ar1().resample(time="YS").mean()
    assert normalization_mode(_view(monthly), "global") == "global"
    assert normalization_mode(_view(monthly, "reconstruct")) == "global"
    annual_view = _view(annual)
    assert normalization_mode(annual_view) == "global"
    assert fit_normalizer(annual_view).climatology_ == {}
    with pytest.raises(ClimatuneError) as err:
        normalization_mode(_view(monthly, "downscale"), "anomaly")
    assert str(err.value) == (
        "data.normalization=anomaly is for forecast and index tasks, not downscale; "
        "set data.normalization to global or auto"
    )


def test_anomaly_statistics_round_trip_and_refuse_another_grid_or_missing_months():
    ds = _seasonal_ar1().isel(time=slice(0, 36))
    norm = Normalizer().fit(ds.isel(time=slice(0, 24)), anomaly=True)
    back = Normalizer.from_dict(norm.to_dict(), norm.climatology_)
    assert norm.to_dict()["climatology"] == {"tas": list(range(1, 13))}
    restored = back.inverse_transform(back.transform(ds))
    np.testing.assert_allclose(restored.tas.values, ds.tas.values, atol=1e-3)
    with pytest.raises(
        ClimatuneError, match=r"names climatologies of \['tas'\] but holds arrays of \[\]"
    ):
        Normalizer.from_dict(norm.to_dict())
    nan = {"tas": np.full((12, 4, 5), np.nan, np.float32)}
    with pytest.raises(
        ClimatuneError, match=r"\(\[12, 4, 5\], months \[1, .*, 12\]\) is not 12 finite"
    ):
        Normalizer.from_dict(norm.to_dict(), nan)
    with pytest.raises(ClimatuneError) as err:
        norm.centre("tas", np.array([1, 2]), (3, 5))
    assert str(err.value) == (
        "the climatology of 'tas' was fitted on a grid of [4, 5] cells, but these data have "
        "[3, 5]: give data on the model's grid (regrid them, or list them in data.sources "
        "with the model's data.grid), or fine-tune on these data to refit it"
    )
    spring = Normalizer().fit(ds.isel(time=slice(2, 5)), anomaly=True)  # March to May
    assert spring.months_ == {"tas": [3, 4, 5]} and np.isfinite(spring.climatology_["tas"]).all()
    with pytest.raises(ClimatuneError, match=r"no data for calendar month\(s\) \[1, 6\] of 'tas'"):
        spring.centre("tas", np.array([1, 3, 6]), (4, 5))


def test_an_index_named_like_an_input_field_is_normalised_globally(tmp_path):
    from climatune.testing import tiny_archive, tiny_config

    sets = ("task.kind=index", "task.index.variable=sst", "data.variables=[sst]")
    sets = (*sets, "task.index.region={lat: [-30, 30], lon: [0, 359]}")
    cfg = tiny_config(tiny_archive(tmp_path / "tiny.nc"), *sets)
    view = build_view(cfg.data, cfg.task)
    assert view.is_scalar and view.targets == ["sst"] and view.inputs == ["sst"]
    assert normalization_mode(view, "auto") == "global"  # one field climatology per name
    with pytest.raises(ClimatuneError, match="needs the index 'sst' named apart from"):
        normalization_mode(view, "anomaly")
