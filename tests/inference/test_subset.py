"""A variable-token model predicts, evaluates and explains data lacking some of its inputs:
they are left out by name, as a training source lacking them is; other models refuse."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
import xarray as xr

from climatune import load_model
from climatune.cli import main
from climatune.data.io import open_dataset
from climatune.data.samples import TaskSamples
from climatune.data.settings import RegionConfig
from climatune.data.view import build_view
from climatune.errors import ClimatuneError
from climatune.evaluation.metrics import rmse as rmse_of
from climatune.inference import ABSENT_INPUTS, model_view, predict_view, static_for
from climatune.testing import tiny_archive, tiny_config
from climatune.workflows.pretraining import pretrain

VARTOKEN = ["model.backbone=vartoken_vit", "model.dim=16", "model.patch=4"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An archive with tas, pr and sst; one-epoch models reading all three and predicting
    tas and sst: a vartoken ensemble (2 members, anomalies, no residual), a U-Net, and a
    vartoken network (global statistics, as a regional crop needs; residual)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("subset")
    archive = tiny_archive(root / "tiny.nc")
    sets = ["data.variables=[tas, pr, sst]", "data.targets=[tas, sst]", "trainer.max_epochs=1"]
    vartoken = pretrain(
        tiny_config(archive, *sets, *VARTOKEN, "ensemble.members=2", "model.residual=false"),
        out=root / "vartoken",
    )
    unet = pretrain(tiny_config(archive, *sets), out=root / "unet")
    single = pretrain(
        tiny_config(archive, *sets, *VARTOKEN, "data.normalization=global"), out=root / "single"
    )
    full = open_dataset(archive).load()
    no_pr = root / "no_pr.nc"
    full.drop_vars("pr").to_netcdf(no_pr)
    return archive, vartoken, unet, no_pr, single


def _net_on_subset(model, ds: xr.Dataset, names: list[str]) -> np.ndarray:
    """tas predicted by calling the networks on ``names`` alone (``names=``), in K."""
    view = model_view(model, model.view(ds))
    sub = TaskSamples(view, "predict", model.normalizer, mask_ratio=0.0)
    fields = torch.stack([sub[i]["fields"] for i in range(len(sub))])
    assert fields.shape[1] == len(names)
    with torch.no_grad():
        out = model.net(fields, static_for(model, view), names=names)[:, 0].numpy()
    months = view.fields.time.isel(time=view.target_index(view.anchors["predict"])).dt.month
    centre = model.normalizer.centre("tas", months.values, out.shape[1:])
    return out * model.normalizer.std_["tas"] + centre


def test_predict_leaves_a_missing_input_out_by_name(runs, tmp_path, caplog):
    archive, vartoken, _, no_pr, _ = runs
    out = tmp_path / "p.nc"
    argv = ["predict", str(vartoken), "--input", str(no_pr), "--output", str(out)]
    with caplog.at_level(logging.WARNING, logger="climatune"):
        assert main(argv) == 0
    notes = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(notes) == 1 and notes[0].startswith("note:") and "pr" in notes[0]
    model = load_model(vartoken)
    assert model.members == 2 and set(model.normalizer.climatology_) >= {"tas", "sst"}
    whole = model.predict(open_dataset(archive), members=True)
    with xr.open_dataset(out) as pred:
        assert pred.attrs[ABSENT_INPUTS] == "pr" and "left out: pr" in pred.attrs["history"]
        assert pred.tas.shape == whole.tas.shape  # (member, time, lat, lon)
        assert np.isfinite(pred.tas.values).all()
        # sst is NaN north of 40N in the input (land): NaN there in the output, not blanked
        north = pred.lat >= 40
        assert pred.sst.sel(lat=north).isnull().all() and pred.sst.sel(lat=~north).notnull().all()
        # pr mattered: the prediction without it is another one
        assert float(abs(pred.tas - whole.tas).max()) > 1e-3
        # and it is the networks on tas and sst alone, by name
        mean = pred.tas.mean("member").values
    expected = _net_on_subset(model, open_dataset(no_pr), ["tas", "sst"])
    np.testing.assert_allclose(mean, expected, rtol=0, atol=1e-3)


def test_left_out_by_name_is_the_training_sources_all_nan_input(runs):
    """Feeding pr by name or as an all-NaN channel (a source lacking it) is one prediction."""
    model = load_model(runs[1])
    net = model.net.members[0]
    fields = torch.randn(2, 3, 1, 8, 16)
    static = model.static
    missing = fields.clone()
    missing[:, 1] = float("nan")
    with torch.no_grad():
        by_name = net(fields[:, [0, 2]], static, names=["tas", "sst"])
        as_nan = net(missing, static)
    torch.testing.assert_close(by_name, as_nan, rtol=0, atol=1e-5)


def test_a_regional_crop_in_other_units_without_an_input(runs):
    archive, _, _, no_pr, single = runs
    model = load_model(single)
    crop = {"lat": slice(0, 6), "lon": slice(2, 12)}
    ds = open_dataset(no_pr).isel(crop).load()
    ds["tas"] = (ds.tas - 273.15).assign_attrs(ds.tas.attrs, units="degC")
    pred = model.predict(ds)  # inside a margin of replicated cells
    assert pred.tas.attrs["units"] == "degC" and pred.tas.shape[1:] == (6, 10)
    assert np.isfinite(pred.tas.values).all()
    whole = model.predict(open_dataset(archive).isel(crop))
    assert float(abs(pred.tas + 273.15 - whole.tas).max()) > 1e-4  # pr mattered there too


@pytest.fixture(scope="module")
def tas_only(runs, tmp_path_factory):
    """A vartoken network with a Gaussian head forecasting tas alone (global statistics)."""
    sets = ["data.variables=[tas, pr, sst]", "data.targets=[tas]", "trainer.max_epochs=1"]
    sets += ["data.normalization=global", "model.head_distribution=gaussian"]
    cfg = tiny_config(runs[0], *sets, *VARTOKEN)
    return cfg, load_model(pretrain(cfg, out=tmp_path_factory.mktemp("tas") / "run"))


def test_a_gaussian_head_without_an_input(runs, tas_only):
    archive, _, _, no_pr, _ = runs
    model = tas_only[1]
    ds = open_dataset(no_pr)
    mean, std = model.predict_distribution(ds)
    assert mean.attrs[ABSENT_INPUTS] == "pr" and (std.tas.values > 0).all()
    np.testing.assert_allclose(mean.tas.isel(member=0), model.predict(ds).tas, atol=1e-4)
    whole = model.predict_distribution(open_dataset(archive))[0]
    assert float(abs(mean.tas - whole.tas).max()) > 1e-4


def test_an_input_empty_in_a_region_is_left_out_with_one_note(tas_only, caplog):
    cfg, model = tas_only
    data = cfg.data.model_copy(update={"region": RegionConfig(lat=(45, 80), lon=(0, 360))})
    with caplog.at_level(logging.WARNING, logger="climatune"):
        view = build_view(data, cfg.task, partial_inputs=True)  # sst is NaN north of 40N
        pred = predict_view(model, view, "test")
    assert view.inputs == ["tas", "pr"] and view.left_out == ("sst",)
    notes = [r.getMessage() for r in caplog.records if "sst" in r.getMessage()]
    assert len(notes) == 1 and "dropped from the inputs" in notes[0]
    assert pred.attrs[ABSENT_INPUTS] == "sst" and np.isfinite(pred.tas.values).all()


def test_evaluate_with_a_subset_scores_the_model(runs, tmp_path, caplog):
    archive, _, _, no_pr, single = runs
    out = tmp_path / "eval"
    argv = ["evaluate", str(single), "--set", f"data.path={no_pr}", "--baselines", "none"]
    with caplog.at_level(logging.WARNING, logger="climatune"):
        assert main([*argv, "--out", str(out)]) == 0
    notes = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(notes) == 1  # once, however many predictions evaluate makes
    rows = json.loads((out / "metrics.json").read_text())
    rmse = {(r["model"], r["variable"]): r["value"] for r in rows if r["metric"] == "rmse"}
    assert set(rmse) == {("pretrained", "tas"), ("pretrained", "sst")}
    assert all(np.isfinite(v) and v > 0 for v in rmse.values())
    # the same network on the same test samples, with pr: another score
    model = load_model(single)
    view = model_view(model, build_view(model.meta.data_config, model.meta.task_config))
    truth = view.truth("test")
    full = predict_view(model, view, "test")
    assert abs(rmse_of(full.tas, truth.tas, view.weights()) - rmse[("pretrained", "tas")]) > 1e-4


def test_explain_with_a_subset_attributes_the_inputs_given(runs, tmp_path):
    _, vartoken, _, no_pr, _ = runs
    out = tmp_path / "explain"
    argv = ["explain", str(vartoken), "--set", f"data.path={no_pr}", "--method", "saliency"]
    assert main([*argv, "--samples", "2", "--out", str(out)]) == 0
    with xr.open_dataset(out / "attributions.nc") as ds:
        assert list(ds.variable.values) == ["tas", "sst"] and ds.attrs[ABSENT_INPUTS] == "pr"
        assert np.isfinite(ds.attribution.sel(variable="tas").values).all()


def test_a_unet_missing_an_input_refuses_in_one_line(runs, tmp_path, capsys):
    _, _, unet, no_pr, _ = runs
    out = tmp_path / "p.nc"
    assert main(["predict", str(unet), "--input", str(no_pr), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("climatune: error: the data lacks input")
    assert "['pr']" in err[0] and "vartoken_vit" in err[0]
    assert not out.exists()


def test_data_with_none_of_the_inputs_is_one_clear_error(runs, tmp_path, capsys):
    archive, vartoken, _, _, _ = runs
    other = tmp_path / "other.nc"
    ds = open_dataset(archive).load()
    ds[["tas"]].rename(tas="ta").to_netcdf(other)
    out = tmp_path / "p.nc"
    assert main(["predict", str(vartoken), "--input", str(other), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none of the input variables ['tas', 'pr', 'sst']" in err[0]
    assert "it has: ta" in err[0] and not out.exists()


def test_a_residual_base_cannot_be_left_out(runs, tmp_path, capsys):
    archive, _, _, _, single = runs
    model = load_model(single)
    assert model.net.residual_index == [0, 2]  # tas from tas, sst from sst
    view = model.view(open_dataset(archive))
    view.inputs = ["pr", "sst"]  # tas kept as the target, left out of the inputs
    with pytest.raises(ClimatuneError, match=r"change of tas from tas \(model.residual\)"):
        model_view(model, view)
    out = tmp_path / "eval"
    argv = ["evaluate", str(single), "--set", "data.variables=[pr, sst]", "--baselines", "none"]
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.residual=false" in err[0] and not out.exists()
