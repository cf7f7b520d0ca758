"""``climatune explain`` end to end through the command line, on tiny untrained models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from climatune.cli import main
from climatune.config import dump_config, model_config
from climatune.data.view import build_view
from climatune.explain.attribution import METHODS
from climatune.inference import load_model
from climatune.utils.atomic import STAMP

OUTPUTS = (
    "attributions.nc",
    "attribution_maps.png",
    "interactions.csv",
    "interactions.json",
    "interactions.png",
    "faithfulness.json",
    "faithfulness.png",
)


def run(*args: str) -> int:
    return main(["explain", *args])


def open_attributions(out: Path) -> xr.Dataset:
    return xr.open_dataset(
        out / "attributions.nc", decode_times=xr.coders.CFDatetimeCoder(use_cftime=True)
    )


REGION = "tas@lat=30:60,lon=230:270"  # land: SST has no cell there
# method -> (model, --target, run with --config and --set): every method once, end to end
CASES = {
    "ig": ("forecast_model", None, False),
    "saliency": ("index_model", None, True),
    "occlusion": ("forecast_model", REGION, False),
    "lime": ("index_model", None, False),
    "shap": ("forecast_model", None, False),
}


def expected_rows(model_name: str, target: str | None) -> set[str]:
    if model_name == "index_model":
        return {"nino34"}
    return {target} if target else {"tas", "sst"}  # a row per output of a multi-output model


@pytest.mark.parametrize("method", METHODS)
def test_each_method_writes_every_output(request, tmp_path: Path, method: str) -> None:
    name, target, with_config = CASES[method]
    model_dir: Path = request.getfixturevalue(name)
    model = load_model(model_dir)
    args = ["--method", method, "--samples", "2", "--out", str(tmp_path / "out")]
    args += ["--target", target] if target else []
    if with_config:
        (tmp_path / "run.yaml").write_text(dump_config(model_config(model.meta)))
        args += ["--config", str(tmp_path / "run.yaml"), "--set", "explain.components.tas=ocean"]
    assert run(str(model_dir), *args) == 0
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUTS, STAMP])
    assert json.loads((out / STAMP).read_text())["command"] == "explain"
    view = build_view(model.meta.data_config, model.meta.task_config)
    lag = ("lag",) if model.meta.task_config.history > 1 else ()  # dropped for one input step
    with open_attributions(out) as ds:
        da = ds["attribution"]
        assert da.dims == ("sample", "variable", *lag, "lat", "lon")
        assert list(ds["variable"].values) == model.meta.inputs
        np.testing.assert_allclose(ds.lat, view.fields.lat)
        np.testing.assert_allclose(ds.lon, view.fields.lon)
        times = view.fields.time.values[view.anchors["test"][:2]]
        assert list(ds["sample"].values) == list(times)
        assert ds["sample"].values[0].calendar == "noleap"
        assert ds.attrs["method"] == method
        assert ds.attrs["target"] == (target or model.meta.outputs[0])
        assert ds.attrs["model"] == str(model_dir.resolve())
        assert ds.attrs["Conventions"].startswith("CF") and da.attrs["units"] == "K"
        assert "climatology" in ds.attrs["baseline"] or method in ("saliency", "shap")
        assert np.isnan(da.sel(variable="sst")).any() and np.isfinite(da.sel(variable="tas")).all()
        assert float(np.abs(da).sum()) > 0
        if lag:
            assert ds["lag"].values.tolist() == [-1, 0]
        if "target_mask" in ds:  # field targets; no data.region, so all cells are scored
            assert bool(ds["target_mask"].astype(bool).all()) == (target is None)
    data = json.loads((out / "interactions.json").read_text())
    assert set(data["targets"]) == expected_rows(name, target)
    if target:
        assert "sst@lat=30:60,lon=230:270" in data["skipped"]
    if with_config:  # the --set override wins over the CF standard_name
        assert data["components_of"] == {"tas": "ocean", "sst": "ocean"}
        assert data["targets"]["nino34"]["components"] == {"ocean": 1.0}
    else:
        assert data["components_of"]["tas"] == "atmosphere"
        assert data["components_of"]["sst"] == "ocean"
    assert data["targets"][target or model.meta.outputs[0]]["samples"] == 2
    faith = json.loads((out / "faithfulness.json").read_text())
    assert len(faith["attribution"]) == len(faith["random"]) == len(faith["fractions"]) == 13


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--target", "pr"], "'pr' is not an output of the model"),
        (["--target", "tas@lat=30:60"], "must look like"),
        (["--target", "tas@lat=95:99,lon=0:10"], "goes beyond a pole"),
        (["--samples", "0"], "--samples must be at least 1"),
    ],
)
def test_bad_arguments_are_one_line_user_errors(
    forecast_model: Path, tmp_path: Path, capsys, args, needle
) -> None:
    out = tmp_path / "out"
    assert run(str(forecast_model), *args, "--out", str(out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("climatune: error:") and needle in err[0]
    assert not out.exists()  # nothing half-written


def test_region_on_an_index_model_is_refused(index_model: Path, tmp_path: Path, capsys) -> None:
    assert (
        run(
            str(index_model),
            "--target",
            "nino34@lat=-5:5,lon=190:240",
            "--out",
            str(tmp_path / "o"),
        )
        == 2
    )
    assert "index model predicts one number" in capsys.readouterr().err
