"""``climatune explain`` end to end through the command line, on tiny untrained models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from climatune.cli import main
from climatune.config import dump_config
from climatune.data.view import build_view
from climatune.explain.attribution import METHODS
from climatune.finetune.artifact import load_model

OUTPUTS = ("attributions.nc", "attribution_maps.png", "interactions.csv", "interactions.json",
           "interactions.png", "faithfulness.json", "faithfulness.png")


def run(*args: str) -> int:
    return main(["explain", *args])


def open_attributions(out: Path) -> xr.Dataset:
    return xr.open_dataset(out / "attributions.nc", decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))


@pytest.mark.parametrize("method", METHODS)
def test_each_method_writes_every_output(forecast_model: Path, tmp_path: Path, method: str) -> None:
    out = tmp_path / method
    assert run(str(forecast_model), "--method", method, "--samples", "1", "--out", str(out)) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    model = load_model(forecast_model)
    view = build_view(model.config)
    with open_attributions(out) as ds:
        da = ds["attribution"]
        assert da.dims == ("sample", "variable", "lag", "lat", "lon")
        assert list(ds["variable"].values) == ["tas", "sst", "siconc"]
        assert list(ds["component"].values) == ["atmosphere", "ocean", "ice"]
        assert ds["lag"].values.tolist() == [-1, 0]
        np.testing.assert_allclose(ds.lat, view.fields.lat)
        np.testing.assert_allclose(ds.lon, view.fields.lon)
        first = view.fields.time.values[view.anchors["test"][0]]
        assert ds["sample"].values[0] == first and ds["sample"].values[0].calendar == "noleap"
        assert ds.attrs["method"] == method and ds.attrs["target"] == "tas"
        assert ds.attrs["model"] == str(forecast_model.resolve())
        assert ds.attrs["Conventions"].startswith("CF") and da.attrs["units"] == "K"
        assert "climatology" in ds.attrs["baseline"] or method in ("saliency", "shap")
        assert np.isnan(da.sel(variable="sst")).any() and np.isfinite(da.sel(variable="tas")).all()
        assert float(np.abs(da).sum()) > 0
    rows = json.loads((out / "interactions.json").read_text())["targets"]
    assert set(rows) == {"tas", "sst"}  # one row per output of a multi-output model
    faith = json.loads((out / "faithfulness.json").read_text())
    assert len(faith["attribution"]) == len(faith["random"]) == len(faith["fractions"])


def test_index_model_with_config_and_overrides(index_model: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(dump_config(load_model(index_model).config))
    out = tmp_path / "out"
    rc = run(str(index_model), "--config", str(cfg), "--set", "explain.components.tas=ocean",
             "--samples", "2", "--out", str(out))
    assert rc == 0
    with open_attributions(out) as ds:
        assert ds["attribution"].dims == ("sample", "variable", "lat", "lon")  # history 1: no lag
        assert ds.sizes["sample"] == 2 and ds.attrs["target"] == "nino34"
    data = json.loads((out / "interactions.json").read_text())
    assert data["components_of"] == {"tas": "ocean", "sst": "ocean"}
    assert data["targets"]["nino34"]["components"] == {"ocean": 1.0}


def test_region_target_is_outlined_and_named(forecast_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run(str(forecast_model), "--target", "tas@lat=30:60,lon=230:270", "--samples", "1",
               "--out", str(out)) == 0
    with open_attributions(out) as ds:
        assert ds.attrs["target"] == "tas@lat=30:60,lon=230:270"
        assert int(ds["target_mask"].sum()) > 0
    data = json.loads((out / "interactions.json").read_text())
    assert list(data["targets"]) == ["tas@lat=30:60,lon=230:270"]
    assert "sst@lat=30:60,lon=230:270" in data["skipped"]  # that box is land: no SST


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--target", "pr"], "'pr' is not an output of the model"),
        (["--target", "tas@lat=30:60"], "must look like"),
        (["--target", "tas@lat=95:99,lon=0:10"], "outside the grid"),
        (["--samples", "0"], "--samples must be at least 1"),
    ],
)
def test_bad_arguments_are_one_line_user_errors(forecast_model: Path, tmp_path: Path, capsys, args, needle) -> None:
    out = tmp_path / "out"
    assert run(str(forecast_model), *args, "--out", str(out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("climatune: error:") and needle in err[0]
    assert not out.exists()  # nothing half-written


def test_region_on_an_index_model_is_refused(index_model: Path, tmp_path: Path, capsys) -> None:
    assert run(str(index_model), "--target", "nino34@lat=-5:5,lon=190:240", "--out", str(tmp_path / "o")) == 2
    assert "index model predicts one number" in capsys.readouterr().err
