"""Normalizer: fitted on training steps only, NaN kept, round trip exact."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from climatune.data.normalize import Normalizer
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
