"""Predicting on data in other units than the model's: converted in, converted back out."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from climatune import load_model
from climatune.cli import main
from climatune.data.io import open_dataset
from climatune.inference import model_units
from climatune.testing import tiny_archive, tiny_config
from climatune.workflows.pretraining import pretrain


@pytest.fixture(scope="module")
def kelvin(tmp_path_factory):
    """A tiny model trained on tas, pr and sst in K, and its archive."""
    root = tmp_path_factory.mktemp("units")
    archive = tiny_archive(root / "tiny.nc")
    return archive, pretrain(tiny_config(archive), out=root / "run")


def _celsius(archive, path, units="degC"):
    ds = open_dataset(archive).load()
    ds["tas"] = (ds.tas - 273.15).assign_attrs(ds.tas.attrs, units=units)
    ds.to_netcdf(path)
    return path


def test_celsius_input_predicts_the_kelvin_values_in_celsius(kelvin, tmp_path):
    archive, run = kelvin
    model = load_model(run)
    in_k = model.predict(open_dataset(archive))
    celsius = open_dataset(_celsius(archive, tmp_path / "c.nc"))
    in_c = model.predict(celsius)
    assert in_c.tas.attrs["units"] == "degC" and in_c.sst.attrs["units"] == "K"
    np.testing.assert_allclose(in_c.tas.values + 273.15, in_k.tas.values, rtol=0, atol=1e-4)
    np.testing.assert_allclose(in_c.sst.values, in_k.sst.values, rtol=0, atol=1e-4)
    assert abs(float(in_c.tas.mean()) - (float(in_k.tas.mean()) - 273.15)) < 1e-4
    as_model = model.predict(celsius, units="model")
    assert as_model.tas.attrs["units"] == "K"
    np.testing.assert_allclose(as_model.tas.values, in_k.tas.values, rtol=0, atol=1e-4)


def test_model_units_converts_lazily(kelvin, tmp_path):
    archive, run = kelvin
    model = load_model(run)
    view = model.view(open_dataset(_celsius(archive, tmp_path / "c.nc")))
    converted, changes = model_units(model, view)
    assert changes == ["tas: degC -> K"]
    assert isinstance(converted.fields.tas.data, da.Array)  # nothing loaded
    assert converted.fields.tas.attrs["units"] == "K" and view.fields.tas.attrs["units"] == "degC"
    np.testing.assert_array_equal(
        converted.fields.tas.values, view.fields.tas.values.astype("f8") + 273.15
    )


def test_predicted_netcdf_has_the_inputs_units(kelvin, tmp_path, caplog):
    archive, run = kelvin
    celsius = str(_celsius(archive, tmp_path / "c.nc"))
    out = tmp_path / "p.nc"
    with caplog.at_level("WARNING", logger="climatune"):  # a note on stderr in a terminal
        assert main(["predict", str(run), "--input", celsius, "--output", str(out)]) == 0
    assert "note: units converted to the model's: tas: degC -> K" in caplog.text
    with xr.open_dataset(out) as pred, xr.open_dataset(celsius) as given:
        assert pred.tas.attrs["units"] == "degC" and pred.sst.attrs["units"] == "K"
        # a forecast of the next month's tas in degC, near the input's values, not 273 K off
        assert abs(float(pred.tas.mean()) - float(given.tas.mean())) < 5
    model_out = tmp_path / "pk.nc"
    argv = ["predict", str(run), "--input", celsius, "--output", str(model_out), "--units", "model"]
    assert main(argv) == 0
    with xr.open_dataset(model_out) as pred, xr.open_dataset(out) as first:
        assert pred.tas.attrs["units"] == "K"
        np.testing.assert_allclose(pred.tas.values, first.tas.values + 273.15, atol=1e-3)


def test_incompatible_units_are_one_line_exit_2(kelvin, tmp_path, capsys):
    archive, run = kelvin
    metres = str(_celsius(archive, tmp_path / "m.nc", units="m"))
    out = tmp_path / "p.nc"
    rc = main(["predict", str(run), "--input", metres, "--output", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and not out.exists()
    assert err[0] == (
        "climatune: error: variable 'tas' is in 'm', which cannot be converted to the 'K' of "
        "the model; give the data in 'K' (or rename the variable if it is a different quantity)"
    )


def test_only_cells_never_valid_are_blanked(kelvin):
    # sst is NaN north of 40N (land); one tas cell misses its first month only
    archive, run = kelvin
    ds = open_dataset(archive).load()
    ds["tas"][0, 2, 3] = np.nan
    pred = load_model(run).predict(ds)
    assert bool(pred.tas.notnull().all())  # the gap in one month hides no prediction
    north = pred.lat > 40
    assert bool(pred.sst.sel(lat=north).isnull().all())
    assert bool(pred.sst.sel(lat=~north).notnull().all())
