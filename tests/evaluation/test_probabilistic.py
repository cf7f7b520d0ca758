"""Probabilistic scores: truths on synthetic ensembles of known noise, and the evaluation path."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from climatune import load_model
from climatune.data.view import build_view
from climatune.evaluation.evaluate import evaluate_view
from climatune.evaluation.metrics import lat_weights, rmse
from climatune.evaluation.probabilistic import (
    climatological_ensemble,
    crps_comparison_rows,
    dress,
    ensemble_rows,
    residual_spread,
    spread_skill,
)
from climatune.inference import predict_view
from climatune.report.tables import probabilistic_lines
from climatune.testing import tiny_archive, tiny_config
from climatune.workflows.pretraining import pretrain

LAT, LON = np.array([-60.0, -20.0, 20.0, 60.0]), np.arange(0.0, 360.0, 45.0)


def _values(rows, model="m", variable="tas"):
    return {
        r["metric"]: r["value"] for r in rows if (r["model"], r["variable"]) == (model, variable)
    }


def _synthetic(scale: float, members: int = 10, times: int = 300, seed: int = 0):
    """Truth = signal + N(0, 1); members = signal + N(0, scale²): calibrated when scale = 1."""
    rng = np.random.default_rng(seed)
    shape = (times, LAT.size, LON.size)
    signal = rng.normal(0.0, 3.0, shape)
    coords = {"lat": LAT, "lon": LON}
    truth = xr.Dataset({"tas": (("time", "lat", "lon"), signal + rng.normal(0, 1, shape))}, coords)
    ens = signal[None] + scale * rng.normal(0, 1, (members, *shape))
    fcst = xr.Dataset({"tas": (("member", "time", "lat", "lon"), ens)}, coords)
    return fcst, truth


def _weights() -> xr.DataArray:
    return lat_weights(xr.DataArray(LAT, dims="lat", coords={"lat": LAT})) * xr.ones_like(
        xr.DataArray(LON, dims="lon", coords={"lon": LON})
    )


def test_a_calibrated_ensemble_has_spread_skill_near_1_and_a_flat_rank_histogram():
    fcst, truth = _synthetic(scale=1.0)
    values = _values(ensemble_rows(fcst, truth, _weights(), model="m", task="t", split="test"))
    assert 0.93 < values["spread_skill"] < 1.07
    ranks = np.array([values[f"rank_hist_{k}"] for k in range(1, 12)])
    assert ranks.sum() == pytest.approx(1.0)
    assert np.abs(ranks - 1 / 11).max() < 0.015  # flat: every rank about 1 / (M + 1)
    assert values["pit_alpha"] < 0.04  # about 1 / (4 M) for M members


def test_an_over_confident_ensemble_is_caught():
    fcst, truth = _synthetic(scale=0.3)
    values = _values(ensemble_rows(fcst, truth, _weights(), model="m", task="t", split="test"))
    assert values["spread_skill"] < 0.45
    ranks = np.array([values[f"rank_hist_{k}"] for k in range(1, 12)])
    assert ranks[0] > 2.5 / 11 and ranks[-1] > 2.5 / 11  # U-shaped: truth outside the members
    assert ranks[5] < 0.5 / 11
    calibrated = _values(
        ensemble_rows(*_synthetic(scale=1.0), _weights(), model="m", task="t", split="test")
    )
    assert values["crps"] > calibrated["crps"] and values["pit_alpha"] > 0.1


def test_the_crps_difference_has_a_paired_interval_against_the_best_baseline():
    calibrated, truth = _synthetic(scale=1.0, times=120)
    wide, _ = _synthetic(scale=3.0, times=120, seed=1)
    narrow, _ = _synthetic(scale=0.3, times=120, seed=2)
    ensembles = {"net": calibrated, "clim": wide, "other": narrow}
    rows = crps_comparison_rows(
        ensembles, truth, _weights(), ["net"], task="t", split="test", seed=3
    )
    crps = {
        m: _values(ensemble_rows(e, truth, _weights(), model=m, task="t", split="test"), m)["crps"]
        for m, e in ensembles.items()
    }
    (row,) = rows
    best = min(("clim", "other"), key=crps.__getitem__)
    assert row["metric"] == "crps_diff" and row["reference"] == best
    assert row["value"] == pytest.approx(crps["net"] - crps[best], rel=1e-9)
    assert row["ci_low"] < row["value"] < row["ci_high"] < 0  # the calibrated one is better
    prob = ensemble_rows(calibrated, truth, _weights(), model="finetuned", task="t", split="test")
    prob += ensemble_rows(wide, truth, _weights(), model="clim", task="t", split="test")
    (line,) = probabilistic_lines([*prob, {**row, "model": "finetuned"}], {"tas": "K"})
    assert "; Δ -" in line and " K, 95 % CI [-" in line and "not significant" not in line


def test_an_under_dispersed_ensemble_is_below_1_and_an_over_dispersed_above():
    low = spread_skill(*(d["tas"] for d in _synthetic(scale=0.5)), None)
    high = spread_skill(*(d["tas"] for d in _synthetic(scale=2.0)), None)
    assert low < 0.8 < 1.2 < high


def test_the_fair_crps_equals_the_hand_computed_value_latitude_weighted():
    # members (0, 1, 4): fair CRPS = mean |x - y| - sum_ij |xi - xj| / (2 M (M - 1))
    # truth 2: 5/3 - 16/12 = 1/3; truth 5: 10/3 - 16/12 = 2. Weights cos(0°) = 1, cos(60°) = 1/2.
    lat = np.array([0.0, 60.0])
    members = np.array([0.0, 1.0, 4.0])[:, None, None, None] * np.ones((3, 1, 2, 1))
    fcst = xr.Dataset(
        {"x": (("member", "time", "lat", "lon"), members)}, {"lat": lat, "lon": [0.0]}
    )
    truth = xr.Dataset(
        {"x": (("time", "lat", "lon"), [[[2.0], [5.0]]])}, {"lat": lat, "lon": [0.0]}
    )
    weights = lat_weights(xr.DataArray(lat, dims="lat", coords={"lat": lat})) * xr.ones_like(
        truth.lon
    )
    values = _values(ensemble_rows(fcst, truth, weights, model="m", task="t", split="s"), "m", "x")
    assert values["crps"] == pytest.approx((1 * 1 / 3 + 0.5 * 2) / 1.5)
    unweighted = _values(ensemble_rows(fcst, truth, None, model="m", task="t", split="s"), "m", "x")
    assert unweighted["crps"] == pytest.approx((1 / 3 + 2) / 2)


def test_cells_outside_the_region_do_not_count():
    fcst, truth = _synthetic(scale=1.0, times=50)
    region = xr.DataArray(LAT > 0, dims="lat", coords={"lat": LAT}) * xr.ones_like(
        xr.DataArray(LON, dims="lon", coords={"lon": LON}), dtype=bool
    )
    weights = lat_weights(region.lat, region)
    wrecked = fcst.copy(deep=True)
    wrecked["tas"] = fcst.tas.where(region, fcst.tas * 0.0 + 1e6)  # nonsense in the south
    kept = _values(ensemble_rows(fcst, truth, weights, model="m", task="t", split="s"))
    spoilt = _values(ensemble_rows(wrecked, truth, weights, model="m", task="t", split="s"))
    for metric in ("crps", "spread_skill", "rank_hist_1"):
        assert spoilt[metric] == pytest.approx(kept[metric])


def test_dressing_puts_gaussian_quantile_members_around_the_prediction():
    pred = xr.Dataset({"tas": (("time", "lat"), [[1.0, 2.0], [3.0, 4.0]])})
    truth_train = xr.Dataset({"tas": (("time", "lat"), [[0.0, 2.0], [2.0, 2.0]])})
    spread = residual_spread(pred, truth_train)  # per cell: sqrt(mean squared residual)
    np.testing.assert_allclose(spread.tas, [1.0, np.sqrt(2.0)])
    dressed = dress(pred, spread, members=20)
    assert dressed.tas.dims == ("member", "time", "lat")
    np.testing.assert_allclose(dressed.tas.mean("member"), pred.tas, atol=1e-12)
    np.testing.assert_allclose(
        dressed.tas.isel(member=10) - pred.tas,
        (0.0627 * spread.tas).broadcast_like(pred.tas),
        atol=1e-3,
    )
    assert float(dressed.tas.std("member").isel(time=0, lat=0)) == pytest.approx(0.96, abs=0.03)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-member ensemble on the tiny monthly archive, and its task view."""
    root = tmp_path_factory.mktemp("prob")
    archive = tiny_archive(root / "tiny.nc")
    sets = ("trainer.max_epochs=1", "trainer.limit_train_batches=2", "ensemble.members=2")
    sets += ("data.targets=[tas]",)
    cfg = tiny_config(archive, *sets)
    return load_model(pretrain(cfg, out=root / "run")), build_view(cfg.data, cfg.task)


def test_the_climatological_ensemble_holds_the_training_years_of_the_same_month(trained):
    _, view = trained
    clim = climatological_ensemble(view, "test")
    train = view.target_data().isel(time=view.steps("train"))
    first = view.target_times("test")[0]
    same = train.tas.where(train.time.dt.month == int(first.dt.month), drop=True)
    assert clim.sizes["member"] == same.sizes["time"] == 5  # train 2000-2004
    np.testing.assert_array_equal(clim.tas.isel(time=0).values, same.values)
    assert clim.sizes["time"] == view.target_times("test").size


def test_evaluate_scores_an_ensemble_by_its_mean_and_adds_probabilistic_rows(trained):
    model, view = trained
    rows, preds = evaluate_view(view, {"pretrained": model}, ["persistence"])
    members = predict_view(model, view, "test", members=True)
    truth = view.truth("test")
    np.testing.assert_allclose(preds["pretrained"].tas, members.tas.mean("member"))
    det = {(r["model"], r["variable"], r["metric"]): r["value"] for r in rows}
    expected = rmse(
        members.tas.mean("member"),
        truth.tas.where(preds["persistence"].tas.notnull()),
        view.weights(),
    )
    assert det[("pretrained", "tas", "rmse")] == pytest.approx(float(expected), rel=1e-5)
    prob = {r["model"] for r in rows if r["metric"] == "crps"}
    assert prob == {
        "pretrained",
        "pretrained_dressed",  # the ensemble dressed with the spread it lacks on training years
        "climatological_ensemble",
        "persistence_dressed",
    }
    assert {r["metric"] for r in rows if r["model"] == "pretrained"} >= {
        "rmse",
        "crps",
        "spread_skill",
        "pit_alpha",
        "rank_hist_1",
        "rank_hist_3",
    }
    assert not any(r["metric"] == "rank_hist_4" for r in rows if r["model"] == "pretrained")
    assert all(np.isfinite(r["value"]) for r in rows if r["metric"] == "crps")
    crps = {r["model"]: r["value"] for r in rows if r["metric"] == "crps"}
    diffs = {r["model"]: r for r in rows if r["metric"] == "crps_diff"}
    assert set(diffs) == {"pretrained", "pretrained_dressed"}  # the networks, raw and dressed
    best = min(("climatological_ensemble", "persistence_dressed"), key=crps.__getitem__)
    for name, row in diffs.items():
        assert row["reference"] == best and row["ci_low"] <= row["value"] <= row["ci_high"]
        assert row["value"] == pytest.approx(crps[name] - crps[best], rel=1e-6)
    single, _ = evaluate_view(view, {"pretrained": model.member(0)}, [])
    assert not any(r["metric"] == "crps" for r in single)  # one network: no new rows
