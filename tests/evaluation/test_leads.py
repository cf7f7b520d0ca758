"""``climatune leads``: skill by lead on tiny data, its baselines checked against a direct
evaluation, bad lead lists refused; and the Nino 3.4 task on the monthly HadISST sample."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from climatune.cli import main
from climatune.config import load_config
from climatune.data.view import build_view
from climatune.evaluation.baselines import make_baseline
from climatune.evaluation.metrics import correlation, index_rmse
from climatune.inference import load_model, predict_view
from climatune.testing import tiny_archive, tiny_config
from climatune.workflows.pretraining import pretrain

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "enso"
NINO = (
    "task.kind=index",
    "task.index.variable=sst",
    "task.index.region={lat: [-30, 30], lon: [0, 359]}",
)
NINO = (*NINO, "data.variables=[sst]", "task.history=2")
BASELINES = ("persistence", "damped_persistence", "climatology")


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """A monthly archive in K, the same archive with sst in degC, and an index model
    pre-trained on the first (its target: the mean sst of a box, in K)."""
    root = tmp_path_factory.mktemp("leads")
    kelvin = tiny_archive(root / "k.nc")
    ds = xr.open_dataset(kelvin).load()
    ds["sst"] = (ds.sst - 273.15).assign_attrs(ds.sst.attrs, units="degC")
    celsius = root / "c.nc"
    ds.to_netcdf(celsius)
    cfg = tiny_config(kelvin, *NINO, "task.lead=1", "trainer.max_epochs=1")
    return kelvin, celsius, pretrain(cfg, out=root / "pre")


def test_an_index_of_a_field_in_other_units_is_converted_both_ways(archives):
    """The index averaged from a degC field follows the model's K on the way in and comes
    back in degC: the same forecast, 273.15 lower."""
    kelvin, celsius, run = archives
    model = load_model(run)
    configs = [tiny_config(p, *NINO, "task.lead=1") for p in (kelvin, celsius)]
    views = [build_view(c.data, c.task) for c in configs]
    assert views[1].index.attrs["units"] == "degC"
    k, c = (predict_view(model, v, "test").sst for v in views)
    np.testing.assert_allclose(c.values, k.values - 273.15, atol=1e-3)


def test_leads_writes_rows_whose_baselines_equal_a_direct_evaluation(archives, tmp_path, capsys):
    _, celsius, run = archives
    cfg = tmp_path / "leads.yaml"
    cfg.write_text(
        f"data:\n  path: {celsius}\n  variables: [sst]\n"
        "  split: {train: [2000, 2004], val: [2005, 2005], test: [2006, 2007]}\n"
        "  batch_size: 8\n"
        "task: {kind: index, history: 2, index: {variable: sst, region: {lat: [-30, 30], lon: [0, 359]}}}\n"
        "model: {width: 8, depth: 1}\ntrainer: {max_epochs: 1, progress_bar: false}\n"
    )
    out = tmp_path / "leads"
    argv = ["leads", "--config", str(cfg), "--from", str(run), "--leads", "3,1", "--out", str(out)]
    assert main(argv) == 0
    rows = json.loads((out / "leads.json").read_text())
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in printed[:2]] == ["lead 1 sst", "lead 3 sst"]
    assert "damped persistence" in printed[0] and "95 % CI" in printed[0]
    with (out / "leads.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)
    value = {(r["lead"], r["model"], r["metric"]): r["value"] for r in rows if "reference" not in r}
    models = ("finetuned", "scratch", *BASELINES)
    assert {(k[0], k[1]) for k in value if k[2] == "rmse"} == {
        (lead, m) for lead in (1, 3) for m in models
    }
    for lead in (1, 3):
        config = load_config(cfg, [f"task.lead={lead}"])
        view = build_view(config.data, config.task)
        truth = view.truth("test").sst
        clim = make_baseline("climatology").fit(view).predict(view, "test").sst
        for name in BASELINES:
            pred = make_baseline(name).fit(view).predict(view, "test").sst
            assert value[(lead, name, "rmse")] == pytest.approx(index_rmse(pred, truth), rel=1e-9)
            assert value[(lead, name, "corr")] == pytest.approx(correlation(pred, truth), rel=1e-9)
            if name != "climatology":
                anom = correlation(pred - clim, truth - clim)
                assert value[(lead, name, "corr_anom")] == pytest.approx(anom, rel=1e-9)
        damped = value[(lead, "damped_persistence", "rmse")]
        for model in models:
            mse, ref = value[(lead, model, "rmse")] ** 2, value[(lead, "climatology", "rmse")] ** 2
            assert value[(lead, model, "skill")] == pytest.approx(1 - mse / ref)
            assert value[(lead, model, "skill_damped")] == pytest.approx(1 - mse / damped**2)
        tuned = predict_view(load_model(out / f"lead-{lead}" / "finetuned"), view, "test").sst
        assert value[(lead, "finetuned", "rmse")] == pytest.approx(
            index_rmse(tuned, truth), rel=1e-6
        )
        diff = next(
            r
            for r in rows
            if r["lead"] == lead
            and r["metric"] == "rmse_diff"
            and r["model"] == "finetuned"
            and r["reference"] == "damped_persistence"
        )
        gap = value[(lead, "finetuned", "rmse")] - damped
        assert diff["value"] == pytest.approx(gap) and diff["ci_low"] <= gap <= diff["ci_high"]
        assert (out / f"lead-{lead}" / "scratch" / "model" / "climatune.json").is_file()
    assert (out / "leads.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "Skill by lead time" in page and "beats damped persistence at" in page
    assert "lead-1/finetuned" not in page  # the per-lead runs are summarised by leads.json


@pytest.mark.parametrize(
    ("leads", "message"),
    [
        ("", "--leads is empty"),
        ("1,0", "lead 0 is not a forecast"),
        ("-2", "lead -2 is not a forecast"),
        ("1,2.5", "'2.5' is not a whole number"),
        ("one", "'one' is not a whole number"),
    ],
)
def test_bad_lead_lists_are_refused_in_one_line(archives, tmp_path, capsys, leads, message):
    kelvin, _, run = archives
    out = tmp_path / "leads"
    argv = ["leads", "--config", str(EXAMPLES / "finetune.yaml"), "--from", str(run)]
    assert main([*argv, "--leads", leads, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("climatune: error: ") and message in err
    assert not out.exists()


def test_the_enso_example_forecasts_nino34_on_monthly_hadisst():
    """The example's task on the real monthly observations: the index is the cos-weighted
    SST mean over 5S-5N, 170W-120W, and the reference forecasts act on anomalies."""
    cfg = load_config(EXAMPLES / "finetune.yaml", ["task.lead=12"])
    view = build_view(cfg.data, cfg.task)
    sst = view.fields.sst.sel(lat=slice(-5, 5), lon=slice(190, 240))
    assert sst.sizes == {"time": 372, "lat": 3, "lon": 11}
    weights = np.cos(np.deg2rad(sst.lat))
    nino = (sst * weights).sum(("lat", "lon")) / (weights.sum() * sst.sizes["lon"])
    np.testing.assert_allclose(view.index.values, nino.values, rtol=1e-6)
    assert view.index.attrs["units"] == "degC" and 24 < float(view.index.mean()) < 30
    # inputs and targets inside the test years: 3 months of history, then 12 months ahead
    times = view.target_times("test")
    assert (times.dt.year.values[0], times.dt.month.values[0]) == (2016, 3)
    assert times.size == 70 and times.dt.year.values[-1] == 2021
    truth = view.truth("test").sst
    rmse = {
        name: index_rmse(make_baseline(name).fit(view).predict(view, "test").sst, truth)
        for name in BASELINES
    }
    # a year ahead, raw persistence of the anomaly is worse than the climatology, which
    # damped persistence (rho fitted per calendar month) can only approach
    assert rmse["persistence"] > rmse["climatology"] and math.isfinite(rmse["damped_persistence"])
