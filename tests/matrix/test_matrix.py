"""Every task kind × every command that takes a model or a config × the settings that
change code paths (see ``conftest.py`` for the scenarios and what they cover).

Each cell checks behaviour: exit code 0, finite outputs on the right coordinates (target
times = anchor + lead, the region's cells in the input's longitude order) and units,
baselines that never see the target, and metrics that match a hand computation.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import xarray as xr
from safetensors.numpy import load_file

import climatune
from climatune.cli import main
from climatune.config import load_config
from climatune.evaluation.baselines import baselines_for

from .conftest import (
    BY_NAME,
    CURVE_TUNE,
    Matrix,
    Scenario,
    cells,
    expected_grid,
    truth,
    weighted_scores,
)

#: Every baseline DESIGN.md lists for each kind (bilinear ones for downscaling only).
_PERSISTENCE = {"persistence", "damped_persistence", "recent_mean"}
_FORECASTS = {"climatology", *_PERSISTENCE, "linear_trend", "ridge"}
DESIGN_BASELINES = {
    "forecast": _FORECASTS,
    "index": _FORECASTS,
    "downscale": {"climatology", "linear_trend", "ridge", "bilinear", "bilinear_residual"},
    "reconstruct": {"climatology"},
}
LEAD_GT0_FORECAST = tuple(s.name for s in BY_NAME.values() if s.kind == "forecast" and s.lead > 0)
LEAD0 = tuple(s.name for s in BY_NAME.values() if s.lag[1] == 0 and s.kind in ("forecast", "index"))


def outputs(s: Scenario) -> list[str]:
    return [s.index_name] if s.kind == "index" else list(s.targets or s.variables)


def units_of(s: Scenario, m: Matrix, name: str) -> str:
    return str(truth(s, m, name).attrs["units"])


def target_times(s: Scenario, m: Matrix) -> np.ndarray:
    """Every target time a whole file yields: time[anchor + lead] for each full sample."""
    history, lead = s.lag
    return xr.open_dataset(m.archive(s), use_cftime=True).time.values[history - 1 + lead :]


def on_grid(da: xr.DataArray, like: xr.Dataset | xr.DataArray) -> xr.DataArray:
    """``da`` at the cells of ``like``, longitudes matched modulo 360 in any order."""
    lon = np.mod(da.lon.values, 360.0)
    cols = [int(np.argmin(abs(lon - x))) for x in np.mod(like.lon.values, 360.0)]
    assert np.allclose(lon[cols], np.mod(like.lon.values, 360.0))
    return da.isel(lon=cols).sel(lat=like.lat, method="nearest", tolerance=1e-3)


def network(rows: list[dict], kind: str) -> str:
    """The label evaluate gives the network: the one scored model that is no baseline."""
    (label,) = {r["model"] for r in rows} - {*baselines_for(kind), "scratch"}
    return label


def rows_of(outcome) -> list[dict]:
    """The metric rows of ``metrics.json`` (the comparisons' interval rows are left out)."""
    return [r for r in _all_rows(outcome) if r["metric"] != "rmse_diff"]


def intervals_of(outcome) -> list[dict]:
    """The ``rmse_diff`` rows: a network minus each other prediction, with its interval."""
    return [r for r in _all_rows(outcome) if r["metric"] == "rmse_diff"]


def _all_rows(outcome) -> list[dict]:
    return json.loads((outcome.out / "metrics.json").read_text())


def scores_of(rows: list[dict], model: str, variable: str) -> dict[str, float]:
    return {
        r["metric"]: r["value"]
        for r in rows
        if r["model"] == model and r["variable"] == variable and r["split"] == "test"
    }


# --------------------------------------------------------------------------- pretrain


@pytest.mark.parametrize("s", cells("pretrain"))
def test_pretrain_writes_an_artifact_for_the_task(matrix: Matrix, s: Scenario) -> None:
    run = matrix.pretrain(s).check().out
    meta = json.loads((run / "model" / "climatune.json").read_text())
    history, lead = s.lag
    assert meta["task"] == {"kind": s.kind, "history": history, "lead": lead, "factor": 2}
    assert [r["name"] for r in meta["inputs"]] == list(s.variables)
    assert [r["name"] for r in meta["outputs"]] == outputs(s)
    assert {r["name"]: r["units"] for r in meta["outputs"]} == {
        n: units_of(s, matrix, n) for n in outputs(s)
    }
    weights = load_file(str(run / "model" / "weights.safetensors"))
    assert all(np.isfinite(v).all() for v in weights.values())


@pytest.mark.parametrize("s", cells("split"))
def test_pretrain_split_keeps_every_sample_inside_its_block(matrix: Matrix, s: Scenario) -> None:
    """Monthly blocks 2000-04 / 2005 / 2006-07: a sample needs history - 1 steps before its
    anchor and lead after it inside its block, and no more steps are thrown away."""
    run = matrix.pretrain(s).check().out
    n = json.loads((run / "model" / "climatune.json").read_text())["provenance"]["n_samples"]
    history, lead = s.lag
    months = {"train": 60, "val": 12, "test": 24}
    assert n == {k: v - (history - 1) - lead for k, v in months.items()}


@pytest.mark.parametrize("s", cells("pretrain+coords"))
def test_pretrain_grid_is_the_domain_in_input_order(matrix: Matrix, s: Scenario) -> None:
    run = matrix.pretrain(s).check().out
    grid = json.loads((run / "model" / "climatune.json").read_text())["grid"]
    lat, lon, _ = expected_grid(s, matrix)
    np.testing.assert_allclose(grid["lat"], lat)
    np.testing.assert_allclose(np.mod(grid["lon"], 360.0), lon)


# --------------------------------------------------------------------------- predict


@pytest.mark.parametrize("s", cells("predict"))
def test_predict_cli_writes_finite_targets_at_anchor_plus_lead(matrix: Matrix, s: Scenario) -> None:
    pred = xr.open_dataset(matrix.predict(s).check().out, use_cftime=True)
    assert sorted(pred.data_vars) == sorted(outputs(s))
    np.testing.assert_array_equal(pred.time.values, target_times(s, matrix))
    _, _, scored = expected_grid(s, matrix)
    for name in outputs(s):
        da = pred[name]
        assert da.attrs["units"] == units_of(s, matrix, name)
        if s.kind == "index":
            assert da.dims == ("time",) and np.isfinite(da).all()
            continue
        src = on_grid(xr.open_dataset(matrix.archive(s), use_cftime=True)[name], da)
        valid = np.isfinite(src.isel(time=0).values)
        finite = np.isfinite(da.values)
        assert (finite == (valid & scored)[None]).all(), (
            f"{name}: finite cells are not the valid region"
        )


@pytest.mark.parametrize("s", cells("predict+coords"))
def test_predict_cli_grid_is_the_region_in_input_order(matrix: Matrix, s: Scenario) -> None:
    pred = xr.open_dataset(matrix.predict(s).check().out, use_cftime=True)
    lat, lon, _ = expected_grid(s, matrix)
    if s.kind != "index":
        np.testing.assert_allclose(pred.lat, lat)
        np.testing.assert_allclose(np.mod(pred.lon, 360.0), lon)
        assert pred.lon.attrs["units"] == "degrees_east"
        assert (np.diff(pred.lon) > 0).all(), "longitudes must be monotonic (DESIGN.md)"


@pytest.mark.parametrize("s", cells("predict"))
def test_predict_python_matches_the_cli(matrix: Matrix, s: Scenario) -> None:
    path = matrix.predict(s).check().out
    model = climatune.load_model(matrix.pretrain(s).out)
    got = model.predict(xr.open_dataset(matrix.archive(s), use_cftime=True))
    cli = xr.open_dataset(path, use_cftime=True)
    for name in outputs(s):
        np.testing.assert_array_equal(got.time.values, cli.time.values)
        np.testing.assert_allclose(got[name].values, cli[name].values, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("s", cells("predict"))
def test_predict_on_later_years_alone_matches_the_whole_file(
    matrix: Matrix, s: Scenario, tmp_path
) -> None:
    """A file of the test years only (new data): the same values at the same times, the
    first history - 1 + lead of its steps having no prediction."""
    whole = xr.open_dataset(matrix.predict(s).check().out, use_cftime=True)
    src = xr.open_dataset(matrix.archive(s), use_cftime=True)
    later = src.isel(time=src.time.dt.year.values >= 2006)
    later.to_netcdf(tmp_path / "later.nc")
    out = tmp_path / "pred.nc"
    run = matrix.pretrain(s).out
    cli = ["predict", str(run), "--input", str(tmp_path / "later.nc"), "--output", str(out)]
    assert main(cli) == 0
    got = xr.open_dataset(out, use_cftime=True)
    history, lead = s.lag
    np.testing.assert_array_equal(got.time.values, later.time.values[history - 1 + lead :])
    for name in outputs(s):
        want = whole[name].sel(time=got.time)
        np.testing.assert_allclose(got[name].values, want.values, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("s", cells("predict+hand"))
def test_evaluate_scores_match_a_hand_computation_from_predict(matrix: Matrix, s: Scenario) -> None:
    """predict on the training file, cut to the test times, scored with numpy, gives
    evaluate's numbers: so both see the same predictions and metrics.json is right."""
    rows = rows_of(matrix.evaluate(s).check())
    pred = xr.open_dataset(matrix.predict(s).check().out, use_cftime=True)
    meta = json.loads((matrix.pretrain(s).out / "model" / "climatune.json").read_text())
    n_test = meta["provenance"]["n_samples"]["test"]
    pred = pred.isel(time=slice(-n_test, None))  # the test block ends the file
    _, _, scored = expected_grid(s, matrix)
    for name in outputs(s):
        got = scores_of(rows, network(rows, s.kind), name)
        true = truth(s, matrix, name).sel(time=pred.time)
        if s.kind == "index":
            p, y = pred[name].values, true.values
            assert got["rmse"] == pytest.approx(np.sqrt(np.mean((p - y) ** 2)), rel=1e-4)
            assert got["corr"] == pytest.approx(np.corrcoef(p, y)[0, 1], rel=1e-4, abs=1e-6)
            continue
        true = on_grid(true, pred)
        want = weighted_scores(pred[name].values, true.values, pred.lat.values, scored)
        for metric, value in want.items():
            assert got[metric] == pytest.approx(value, rel=1e-4, abs=1e-6), (name, metric)


# --------------------------------------------------------------------------- evaluate


@pytest.mark.parametrize("s", cells("evaluate"))
def test_evaluate_scores_the_network_and_baselines_with_finite_metrics(
    matrix: Matrix, s: Scenario
) -> None:
    rows = rows_of(matrix.evaluate(s).check())
    label = network(rows, s.kind)  # "pretrained" today; issue 12 item 9 may rename it
    assert {r["model"] for r in rows} == {label, *baselines_for(s.kind, s.lag[1])}
    metrics = {"rmse", "corr"} if s.kind == "index" else {"rmse", "mae", "bias", "acc", "skill"}
    for model in {r["model"] for r in rows}:
        for name in outputs(s):
            got = scores_of(rows, model, name)
            assert set(got) == metrics, (model, name)
            # the climatology has no anomalies, hence no ACC (DESIGN.md), and skill 0
            assert all(
                np.isfinite(v) for k, v in got.items() if model != "climatology" or k != "acc"
            ), (model, got)
            if model == "climatology" and "skill" in got:
                assert got["skill"] == pytest.approx(0.0, abs=1e-6)
    assert (matrix.evaluate(s).out / "metrics.csv").exists()
    # every comparison of the network carries a finite interval around its difference
    intervals = intervals_of(matrix.evaluate(s))
    assert {(r["reference"], r["variable"]) for r in intervals} == {
        (b, name) for b in baselines_for(s.kind, s.lag[1]) for name in outputs(s)
    }
    for r in intervals:
        assert r["model"] == label and r["ci_low"] <= r["value"] <= r["ci_high"], r
        assert np.isfinite([r["ci_low"], r["ci_high"]]).all() and r["block_length"] >= 1, r


@pytest.mark.parametrize("s", cells("baselines"))
def test_evaluate_all_reports_every_baseline_design_lists(matrix: Matrix, s: Scenario) -> None:
    rows = rows_of(matrix.evaluate(s).check())
    want = DESIGN_BASELINES[s.kind]
    if s.lag[1] == 0:  # DESIGN.md: at lead 0, persisting the target is not a baseline
        want = want - _PERSISTENCE
    assert want <= {r["model"] for r in rows}


@pytest.mark.parametrize("s", cells("no_peeking", LEAD0))
def test_evaluate_lead0_no_baseline_sees_the_target(matrix: Matrix, s: Scenario) -> None:
    """The targets carry noise that no input explains: RMSE ~0 or corr ~1 means a peek."""
    rows = rows_of(matrix.evaluate(s).check())
    for name in outputs(s):
        for model in {r["model"] for r in rows}:
            got = scores_of(rows, model, name)
            assert got["rmse"] > 0.1, f"{model} scores RMSE {got['rmse']:.3g} on {name}"
            if "corr" in got:
                assert got["corr"] < 0.99, f"{model} correlates {got['corr']:.4f} with {name}"


# --------------------------------------------------------------------------- explain


@pytest.mark.parametrize("s", cells("explain"))
def test_explain_attributes_inputs_to_the_target(matrix: Matrix, s: Scenario) -> None:
    out = matrix.explain(s).check().out
    ds = xr.open_dataset(out / "attributions.nc", use_cftime=True)
    da = ds.attribution
    history, lead = s.lag
    assert list(da["variable"].values) == list(s.variables)
    assert ("lag" in da.dims) == (history > 1)
    assert da.sizes["sample"] == 2 and np.isfinite(da).any()
    assert da.attrs["units"] == units_of(s, matrix, outputs(s)[0])
    time = list(xr.open_dataset(matrix.archive(s), use_cftime=True).time.values)
    shift = [time.index(t) - time.index(a) for a, t in zip(da.sample.values, ds.target_time.values)]
    assert shift == [lead] * 2
    rows = json.loads((out / "interactions.json").read_text())
    assert rows, "the interaction matrix is empty"


@pytest.mark.parametrize("s", cells("explain+coords"))
def test_explain_grid_is_the_domain_in_input_order(matrix: Matrix, s: Scenario) -> None:
    da = xr.open_dataset(matrix.explain(s).check().out / "attributions.nc").attribution
    lat, lon, _ = expected_grid(s, matrix)
    np.testing.assert_allclose(da.lat, lat)
    np.testing.assert_allclose(np.mod(da.lon, 360.0), lon)


# --------------------------------------------------------------------------- report


@pytest.mark.parametrize("s", cells("report"))
def test_report_shows_the_run_and_every_scored_model(matrix: Matrix, s: Scenario) -> None:
    page = matrix.report(s).check().out.read_text(encoding="utf-8")
    rows = rows_of(matrix.evaluate(s))
    for model in {r["model"] for r in rows}:
        assert model in page, model
    rmse = scores_of(rows, network(rows, s.kind), outputs(s)[0])["rmse"]
    assert any(f"{rmse:.{d}g}" in page for d in range(3, 7)), f"RMSE {rmse} is not in the report"
    assert s.kind in page
    assert "attribution" in page.lower()


# --------------------------------------------------------------------------- finetune


@pytest.mark.parametrize("s", cells("finetune"))
def test_finetune_trains_a_child_of_the_pretrained_model(matrix: Matrix, s: Scenario) -> None:
    parent = matrix.pretrain(s).check().out / "model"
    child = matrix.finetune(s).check().out / "model"
    meta = json.loads((child / "climatune.json").read_text())
    assert meta["parent"] == str(parent)
    assert meta["grid"] == json.loads((parent / "climatune.json").read_text())["grid"]
    before = load_file(str(parent / "weights.safetensors"))
    after = load_file(str(child / "weights.safetensors"))
    assert set(before) == set(after)
    assert any(not np.array_equal(before[k], after[k]) for k in before), "no weight changed"
    assert all(np.isfinite(v).all() for v in after.values())


@pytest.mark.parametrize("s", cells("seed", ("forecast-region-lead2-hist3",), fast=False))
def test_finetune_with_the_same_seed_gives_the_same_weights(matrix: Matrix, s: Scenario) -> None:
    """A new head (targets tas, sst instead of tas) is the part that is freshly drawn."""
    new_head = ("data.targets=[tas, sst]",)
    first = matrix.finetune(s, "-head", new_head).check().out / "model" / "weights.safetensors"
    again = matrix.finetune(s, "-head2", new_head).check().out / "model" / "weights.safetensors"
    a, b = load_file(str(first)), load_file(str(again))
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("s", cells("evaluate_finetuned", fast=False))
def test_evaluate_finetuned_compares_with_scratch(matrix: Matrix, s: Scenario) -> None:
    out = matrix.evaluate(s, "finetune").check().out
    rows = rows_of(matrix.evaluate(s, "finetune"))
    assert {r["model"] for r in rows} == {"finetuned", "scratch", *baselines_for(s.kind, s.lag[1])}
    for name in outputs(s):
        assert np.isfinite(scores_of(rows, "finetuned", name)["rmse"])
        assert np.isfinite(scores_of(rows, "scratch", name)["rmse"])
    assert (out / "scratch" / "model" / "climatune.json").exists()


# --------------------------------------------------------------------------- curve, tune


@pytest.mark.parametrize("s", cells("curve", CURVE_TUNE, fast=False))
def test_curve_compares_finetuned_and_scratch_per_fraction(matrix: Matrix, s: Scenario) -> None:
    rows = json.loads((matrix.curve(s).check().out / "curve.json").read_text())
    rmse = [r for r in rows if r["metric"] == "rmse"]
    assert {(r["fraction"], r["model"]) for r in rmse} == {
        (f, m) for f in (0.5, 1.0) for m in ("finetuned", "scratch")
    }
    assert {r["variable"] for r in rmse} == set(outputs(s))
    assert all(np.isfinite(r["value"]) and r["value"] > 0 for r in rmse)
    n = {r["fraction"]: r["n_train"] for r in rmse}
    assert 0 < n[0.5] < n[1.0]
    metrics = {r["metric"] for r in rows} - {"rmse_diff"}
    assert metrics == ({"rmse", "corr"} if s.kind == "index" else {"rmse", "skill", "acc"})
    # per fraction and variable, fine-tuned minus scratch with its interval
    diffs = [r for r in rows if r["metric"] == "rmse_diff"]
    assert {(r["fraction"], r["variable"]) for r in diffs} == {
        (f, name) for f in (0.5, 1.0) for name in outputs(s)
    }
    assert all(r["ci_low"] <= r["value"] <= r["ci_high"] for r in diffs), diffs


@pytest.mark.parametrize("s", cells("tune", CURVE_TUNE, fast=False))
def test_tune_writes_a_runnable_best_config(matrix: Matrix, s: Scenario) -> None:
    out = matrix.tune(s).check().out
    best = load_config(out / "best.yaml")
    history, lead = best.task.history, best.task.lead
    assert (best.task.kind, history, lead) == (s.kind, s.history, s.lead)
    assert 1e-4 <= best.optim.lr <= 3e-3
    summary = json.loads((out / "best.json").read_text())
    assert np.isfinite(summary["value"]) and summary["value"] > 0
    with (out / "trials.csv").open() as fh:
        trials = list(csv.DictReader(fh))
    assert [t["state"] for t in trials] == ["COMPLETE"]


@pytest.mark.parametrize("s", cells("persistence", LEAD_GT0_FORECAST))
def test_evaluate_persistence_is_climatology_plus_anomaly(matrix: Matrix, s: Scenario) -> None:
    """DESIGN.md: for sub-annual data, persistence is the training climatology of the
    target's calendar month plus the anomaly at t (raw persistence is not a forecast)."""
    rows = rows_of(matrix.evaluate(s).check())
    n_test = json.loads((matrix.pretrain(s).out / "model" / "climatune.json").read_text())[
        "provenance"
    ]["n_samples"]["test"]
    _, _, scored = expected_grid(s, matrix)
    lat, lon, _ = expected_grid(s, matrix)
    like = xr.Dataset(coords={"lat": lat, "lon": lon})
    for name in outputs(s):
        field = on_grid(truth(s, matrix, name), like)
        month = field.time.dt.month.values
        train = field.time.dt.year.values <= 2004
        clim = {m: field.values[train & (month == m)].mean(0) for m in range(1, 13)}
        targets = np.arange(field.sizes["time"] - n_test, field.sizes["time"])
        anchors = targets - s.lead
        pred = np.stack(
            [clim[month[t]] + field.values[a] - clim[month[a]] for a, t in zip(anchors, targets)]
        )
        want = weighted_scores(pred, field.values[targets], lat, scored)["rmse"]
        got = scores_of(rows, "persistence", name)["rmse"]
        assert got == pytest.approx(want, rel=1e-4), name
