"""Index tasks end to end: predict through the CLI and Python, and lead-0 honesty."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from climatune.cli import main
from climatune.data.view import build_view
from climatune.errors import ClimatuneError
from climatune.evaluation.baselines import baselines_for, make_baseline
from climatune.evaluation.evaluate import evaluate_view, parse_baselines
from climatune.evaluation.metrics import correlation, index_rmse, rmse
from climatune.inference import load_model
from climatune.testing import create_test_data, tiny_config
from climatune.workflows.pretraining import pretrain

INDEX = ("task.kind=index", "task.index.variable=nino34", "data.variables=[tas, pr]")


def index_archive(path):
    """96 months of tas, pr and a ``nino34`` (K) series that is noise, unrelated to them."""
    ds = create_test_data(ntime=96, nlat=8, nlon=16, index=True)
    ds["tas"] = ds.tas + np.random.default_rng(1).normal(0, 0.5, ds.tas.shape).astype("f4")
    ds["nino34"].attrs.update(standard_name="sea_surface_temperature_anomaly")
    ds.to_netcdf(path)
    return path


@pytest.fixture(scope="module")
def index_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("index")
    archive = index_archive(root / "a.nc")
    cfg = tiny_config(archive, *INDEX, "task.history=2", "task.lead=3", "trainer.max_epochs=1")
    return archive, pretrain(cfg, out=root / "run")


@pytest.mark.parametrize("with_index", [True, False])
def test_predict_of_an_index_model_through_the_cli(index_run, tmp_path, with_index):
    archive, run = index_run
    src = xr.open_dataset(archive, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    given = tmp_path / "in.nc"
    (src if with_index else src.drop_vars("nino34")).to_netcdf(given)
    out = tmp_path / "pred.nc"
    assert main(["predict", str(run), "--input", str(given), "--output", str(out)]) == 0
    pred = xr.open_dataset(out, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    assert list(pred.data_vars) == ["nino34"] and pred.nino34.dims == ("time",)
    # history 2, lead 3: the first anchor is step 1, its target step 4
    np.testing.assert_array_equal(pred.time.values, src.time.values[4:])
    assert pred.nino34.attrs["units"] == "K"
    assert pred.nino34.attrs["standard_name"] == "sea_surface_temperature_anomaly"
    assert pred.attrs["Conventions"] == "CF-1.8" and pred.time.attrs["axis"] == "T"
    assert np.isfinite(pred.nino34).all()

    # the same numbers as evaluate predicts for the test years
    model = load_model(run)
    _, preds = evaluate_view(
        build_view(model.meta.data_config, model.meta.task_config), {"pretrained": model}, []
    )
    test = preds["pretrained"].nino34
    np.testing.assert_allclose(pred.nino34.sel(time=test.time).values, test.values, rtol=1e-5)


def test_load_model_predict_of_an_index_model(index_run):
    archive, run = index_run
    src = xr.open_dataset(archive, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    model = load_model(run)
    pred = model.predict(src.drop_vars("nino34"))
    assert pred.nino34.dims == ("time",) and pred.nino34.size == src.time.size - 4
    assert pred.time.values[0] == src.time.values[4]
    np.testing.assert_allclose(pred.nino34.values, model.predict(src).nino34.values)


def lead0_view(kind, tmp_path):
    """A lead-0 task whose target (nino34, or the field ``noise``) is unrelated noise."""
    ds = xr.open_dataset(index_archive(tmp_path / "a.nc")).load()
    ds["noise"] = ds.pr.copy(data=np.random.default_rng(2).normal(size=ds.pr.shape))
    ds["noise"].attrs = {"units": "K"}
    ds.to_netcdf(tmp_path / "b.nc")
    sets = INDEX if kind == "index" else ("data.variables=[tas, pr]", "data.targets=[noise]")
    cfg = tiny_config(tmp_path / "b.nc", *sets, "task.lead=0", "task.history=2")
    return build_view(cfg.data, cfg.task)


@pytest.mark.parametrize("kind", ["index", "forecast"])
def test_no_baseline_sees_the_target_at_lead_0(kind, tmp_path):
    view = lead0_view(kind, tmp_path)
    truth = view.truth("test")
    refused = []
    for name in baselines_for(kind):
        try:
            pred = make_baseline(name).fit(view).predict(view, "test")
        except ClimatuneError as err:
            assert "does not apply at lead 0" in str(err)
            refused.append(name)
            continue
        if kind == "index":  # the target is unit noise: no honest forecast comes close
            assert float(index_rmse(pred.nino34, truth.nino34)) > 0.3, name
            assert float(correlation(pred.nino34, truth.nino34)) < 0.9, name
        else:
            assert float(rmse(pred.noise, truth.noise, view.weights())) > 0.3, name
    assert refused == ["persistence", "damped_persistence", "recent_mean"]
    assert parse_baselines("all", kind, lead=0) == ["climatology", "linear_trend", "ridge"]
    assert baselines_for(kind, 0) == ["climatology", "linear_trend", "ridge"]


@pytest.mark.parametrize("name", ["persistence", "damped_persistence", "recent_mean"])
def test_a_baseline_that_reads_the_target_is_refused_by_name_at_lead_0(name, tmp_path):
    view = lead0_view("index", tmp_path)
    with pytest.raises(ClimatuneError, match=f"'{name}' does not apply at lead 0"):
        parse_baselines(name, "index", lead=0)
    with pytest.raises(ClimatuneError, match="use task.lead >= 1"):
        make_baseline(name).fit(view)
    assert name in parse_baselines(name, "index", lead=1)


def test_evaluate_at_lead_0_says_why_persistence_is_left_out(tmp_path, capsys):
    archive = index_archive(tmp_path / "a.nc")
    cfg = tiny_config(archive, *INDEX, "task.lead=0", "trainer.max_epochs=1")
    run = pretrain(cfg, out=tmp_path / "run")
    out = tmp_path / "e"
    rc = main(["evaluate", str(run), "--baselines", "persistence", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0
    assert err.startswith("climatune: error: baseline 'persistence' does not apply at lead 0")
    assert not out.exists()
    assert main(["evaluate", str(run), "--baselines", "all", "--out", str(out)]) == 0
    import json

    models = {r["model"] for r in json.loads((out / "metrics.json").read_text())}
    assert models == {"pretrained", "climatology", "linear_trend", "ridge"}


def test_a_lead_0_forecast_of_its_own_input_is_refused(tmp_path):
    archive = index_archive(tmp_path / "a.nc")
    cfg = tiny_config(archive, "data.variables=[tas, pr]", "data.targets=[tas]", "task.lead=0")
    with pytest.raises(ClimatuneError, match=r"target\(s\) \['tas'\] among the inputs"):
        build_view(cfg.data, cfg.task)
    cfg = tiny_config(archive, "data.variables=[tas, pr]", "data.targets=[tas]")
    build_view(cfg.data, cfg.task)  # lead 1
