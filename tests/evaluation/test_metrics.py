"""Every metric against arithmetic written out by hand (DESIGN.md, Metrics)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from climatune.errors import ClimatuneError
from climatune.evaluation.metrics import (
    acc,
    bias,
    climatology,
    climatology_at,
    correlation,
    index_rmse,
    lat_weights,
    mae,
    rmse,
    score,
    skill,
)

LAT = np.array([0.0, 60.0])  # cos = 1 and 0.5
LON = np.array([0.0, 120.0, 240.0])
COS = np.array([1.0, 0.5])


def _field(values: np.ndarray, time_axis) -> xr.DataArray:
    time = time_axis(values.shape[0], monthly=True)
    return xr.DataArray(
        values, coords={"time": time.values, "lat": LAT, "lon": LON}, dims=("time", "lat", "lon")
    )


@pytest.fixture
def case(rng, time_axis):
    """3 steps on a 2×3 grid: a land cell NaN in the truth, one NaN in the prediction."""
    truth = 280 + rng.normal(size=(3, 2, 3))
    pred = truth + rng.normal(size=(3, 2, 3))
    clim = 280 + 0.3 * rng.normal(size=(3, 2, 3))
    truth[:, 1, 2] = np.nan  # land
    pred[1, 0, 1] = np.nan  # a missing prediction
    return _field(pred, time_axis), _field(truth, time_axis), _field(clim, time_axis)


@pytest.fixture
def region() -> xr.DataArray:
    """Scores the first two longitudes only."""
    return xr.DataArray(
        [[True, True, False], [True, True, False]],
        coords={"lat": LAT, "lon": LON},
        dims=("lat", "lon"),
    )


@pytest.fixture
def region_weights(region) -> xr.DataArray:
    """The cell weights of that region, as a task view gives them: cos(lat) inside, 0 outside."""
    return lat_weights(region.lat, region)


def _by_hand(pred, truth, clim=None, region=None):
    """The DESIGN.md formulas in plain numpy: weights, valid cells, sums."""
    p, y = pred.values, truth.values
    m = np.isfinite(p) & np.isfinite(y)
    if clim is not None:
        c = clim.values
        m &= np.isfinite(c)
    if region is not None:
        m &= region.values[None]
    w = np.broadcast_to(COS[None, :, None], p.shape) * m
    d = np.where(m, p - y, 0.0)
    out = {
        "rmse": np.sqrt(np.sum(w * d**2) / np.sum(w)),
        "mae": np.sum(w * np.abs(d)) / np.sum(w),
        "bias": np.sum(w * d) / np.sum(w),
    }
    if clim is not None:
        f, a = np.where(m, p - c, 0.0), np.where(m, y - c, 0.0)
        acc_t = [
            np.sum(w[t] * a[t] * f[t])
            / np.sqrt(np.sum(w[t] * f[t] ** 2) * np.sum(w[t] * a[t] ** 2))
            for t in range(p.shape[0])
        ]
        out["acc"] = np.mean(acc_t)
        out["skill"] = 1 - np.sum(w * d**2) / np.sum(w * np.where(m, c - y, 0.0) ** 2)
    return out


def test_lat_weights_are_cosine_with_mean_one_over_valid_cells():
    lat = xr.DataArray(LAT, coords={"lat": LAT}, dims="lat")
    valid = xr.DataArray([[True, False], [True, True]], coords={"lat": LAT}, dims=("lat", "lon"))
    w = lat_weights(lat, valid)
    # valid cells: (0°, lon0), (60°, lon0), (60°, lon1): cos 1, .5, .5 -> scale 3 / 2
    np.testing.assert_allclose(w.transpose("lat", "lon").values, [[1.5, 0.0], [0.75, 0.75]])
    assert float(w.where(valid).mean()) == pytest.approx(1.0)
    np.testing.assert_allclose(lat_weights(lat).values, [4 / 3, 2 / 3])


def test_lat_weights_refuse_an_empty_valid_set():
    lat = xr.DataArray(LAT, coords={"lat": LAT}, dims="lat")
    with pytest.raises(ClimatuneError, match="no valid cell"):
        lat_weights(lat, xr.zeros_like(lat, dtype=bool))


def test_metrics_on_numbers_worked_by_hand(time_axis):
    # one step, one lon: errors 1 at 0° (w 1) and 3 at 60° (w 0.5), a NaN at lon 2
    truth = _field(np.array([[[0.0, 0.0, np.nan], [0.0, 0.0, 0.0]]]), time_axis)
    pred = _field(np.array([[[1.0, 1.0, 5.0], [3.0, 3.0, 3.0]]]), time_axis)
    # Σw = 1+1+.5+.5+.5 = 3.5, Σw e² = 1+1+4.5*3 = 15.5, Σw|e| = 1+1+1.5*3 = 6.5
    assert rmse(pred, truth) == pytest.approx(np.sqrt(15.5 / 3.5))
    assert mae(pred, truth) == pytest.approx(6.5 / 3.5)
    assert bias(pred, truth) == pytest.approx(6.5 / 3.5)
    clim = _field(np.array([[[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]]]), time_axis)
    # f = [1, 1 | 1, 1, 1], a = [0, 0 | -2, -2, -2]; Σwaf = -3, Σwf² = 3.5, Σwa² = 6
    assert acc(pred, truth, clim) == pytest.approx(-3 / np.sqrt(3.5 * 6))
    # MSE_clim: Σw (c-y)² = .5*4*3 = 6, so skill = 1 - 15.5 / 6
    assert skill(pred, truth, clim) == pytest.approx(1 - 15.5 / 6)


def test_field_metrics_match_numpy_with_nan_cells(case):
    pred, truth, clim = case
    want = _by_hand(pred, truth)
    assert rmse(pred, truth) == pytest.approx(want["rmse"])
    assert mae(pred, truth) == pytest.approx(want["mae"])
    assert bias(pred, truth) == pytest.approx(want["bias"])
    want = _by_hand(pred, truth, clim)
    assert acc(pred, truth, clim) == pytest.approx(want["acc"])
    assert skill(pred, truth, clim) == pytest.approx(want["skill"])


def test_field_metrics_match_numpy_inside_a_region(case, region, region_weights):
    pred, truth, clim = case
    want = _by_hand(pred, truth, clim, region)
    assert rmse(pred, truth, region_weights) == pytest.approx(want["rmse"])
    assert mae(pred, truth, region_weights) == pytest.approx(want["mae"])
    assert bias(pred, truth, region_weights) == pytest.approx(want["bias"])
    assert acc(pred, truth, clim, region_weights) == pytest.approx(want["acc"])
    assert skill(pred, truth, clim, region_weights) == pytest.approx(want["skill"])
    assert rmse(pred, truth, region_weights) != pytest.approx(rmse(pred, truth))


def test_cells_outside_the_region_do_not_count(case, region_weights):
    pred, truth, _ = case
    wrecked = pred.copy()
    wrecked[:, :, 2] = 1e6  # only outside the region
    assert rmse(wrecked, truth, region_weights) == pytest.approx(rmse(pred, truth, region_weights))


def test_metrics_weight_by_the_cell_weights_they_are_given(case, region):
    """Weights other than cos(latitude) count as given: a cell of weight 3 counts thrice."""
    pred, truth, _ = case
    weights = xr.where(region, 1.0, 0.0)
    weights[0, 0] = 3.0
    p, y = pred.values, truth.values
    m = np.isfinite(p) & np.isfinite(y) & region.values[None]
    w = np.broadcast_to(weights.values[None], p.shape) * m
    d = np.where(m, p - y, 0.0)
    assert rmse(pred, truth, weights) == pytest.approx(np.sqrt(np.sum(w * d**2) / np.sum(w)))
    assert bias(pred, truth, weights) == pytest.approx(np.sum(w * d) / np.sum(w))


def test_weighting_changes_the_result(time_axis):
    truth = _field(np.zeros((1, 2, 3)), time_axis)
    pred = _field(np.array([[[1.0] * 3, [0.0] * 3]]), time_axis)
    # unweighted this would be 0.5; cos weights give 1 / 1.5
    assert bias(pred, truth) == pytest.approx(1 / 1.5)


def test_properties(case):
    pred, truth, clim = case
    assert rmse(truth, truth) == 0.0
    assert mae(truth, truth) == 0.0
    assert bias(truth + 2.0, truth) == pytest.approx(2.0)
    assert bias(truth - 2.0, truth) == pytest.approx(-2.0)
    assert skill(clim, truth, clim) == 0.0
    assert skill(truth, truth, clim) == 1.0
    assert acc(truth, truth, clim) == pytest.approx(1.0)
    assert acc(2 * truth - clim, truth, clim) == pytest.approx(1.0)  # ACC ignores amplitude
    assert np.isnan(acc(clim, truth, clim))  # the climatology has no anomaly to correlate


def test_acc_is_the_mean_of_per_step_correlations(time_axis):
    # step 0: a perfect anomaly forecast (ACC_0 = 1); step 1: the sign flipped (ACC_1 = -1)
    truth = _field(np.array([[[1.0, -1, 2], [0, 1, -2]], [[1.0, -1, 2], [0, 1, -2]]]), time_axis)
    pred = truth.copy()
    pred[1] = -pred[1]
    assert acc(pred, truth, xr.zeros_like(truth)) == pytest.approx(0.0)


def test_metrics_refuse_mismatched_times(case):
    pred, truth, _ = case
    with pytest.raises(ValueError, match="share coordinates"):
        rmse(pred.isel(time=[0, 1]), truth)


def test_index_metrics_match_numpy(rng, time_axis):
    time = time_axis(12, monthly=True)
    y = rng.normal(size=12)
    p = y + rng.normal(size=12)
    y[3] = np.nan
    p[7] = np.nan
    ok = np.isfinite(y) & np.isfinite(p)
    truth, pred = (xr.DataArray(v, coords={"time": time.values}, dims="time") for v in (y, p))
    assert index_rmse(pred, truth) == pytest.approx(np.sqrt(np.mean((p[ok] - y[ok]) ** 2)))
    assert correlation(pred, truth) == pytest.approx(np.corrcoef(p[ok], y[ok])[0, 1])
    assert correlation(3 * truth + 1, truth) == pytest.approx(1.0)
    assert index_rmse(truth, truth) == 0.0


def test_climatology_per_month_recovers_a_seasonal_cycle(rng, time_axis):
    time = time_axis(48, monthly=True, calendar="360_day")
    cycle = rng.normal(size=(12, 2, 3))
    noise = rng.normal(size=(4, 12, 2, 3))
    noise -= noise.mean(0)  # zero mean in every calendar month
    values = (cycle[None] + noise).reshape(48, 2, 3)
    ds = xr.Dataset({"tas": _field(values, lambda n, monthly: time)})
    clim = climatology(ds)
    np.testing.assert_allclose(clim.tas.transpose("month", "lat", "lon").values, cycle)
    later = time_axis(60, monthly=True, calendar="360_day")[48:]
    at = climatology_at(clim, later)
    assert list(at.time.values) == list(later.values)
    np.testing.assert_allclose(at.tas.values, cycle)


def test_climatology_of_annual_data_is_one_mean(rng, time_axis):
    time = time_axis(5, monthly=False, calendar="noleap")
    values = rng.normal(size=(5, 2, 3))
    ds = xr.Dataset({"tas": _field(values, lambda n, monthly: time)})
    clim = climatology(ds)
    assert "time" not in clim.dims and "month" not in clim.dims
    at = climatology_at(clim, time_axis(8, monthly=False, calendar="noleap")[5:])
    np.testing.assert_allclose(at.tas.values, np.broadcast_to(values.mean(0), (3, 2, 3)))


def test_climatology_at_refuses_a_month_without_training_data(time_axis):
    time = time_axis(6, monthly=True, calendar="noleap")  # January-June only
    ds = xr.Dataset({"tas": _field(np.zeros((6, 2, 3)), lambda n, monthly: time)})
    with pytest.raises(ClimatuneError, match=r"month\(s\) \[7\]"):
        climatology_at(climatology(ds), time_axis(7, monthly=True, calendar="noleap"))


def test_score_rows_for_fields_and_index(case, region, region_weights, time_axis):
    pred, truth, clim = case
    rows = score(
        xr.Dataset({"tas": pred}),
        xr.Dataset({"tas": truth}),
        xr.Dataset({"tas": clim}),
        region_weights,
        model="unet",
        task="forecast",
    )
    got = {r["metric"]: r["value"] for r in rows}
    assert set(got) == {"rmse", "mae", "bias", "acc", "skill"}
    want = _by_hand(pred, truth, clim, region)
    for metric, value in want.items():
        assert got[metric] == pytest.approx(value)
    assert all(
        r["model"] == "unet" and r["task"] == "forecast" and r["split"] == "test" for r in rows
    )
    assert all(r["variable"] == "tas" and isinstance(r["value"], float) for r in rows)

    no_clim = score(
        xr.Dataset({"tas": pred}), xr.Dataset({"tas": truth}), None, None, model="m", task="t"
    )
    assert {r["metric"] for r in no_clim} == {"rmse", "mae", "bias"}

    time = truth.time
    y = xr.DataArray(np.arange(3.0), coords={"time": time.values}, dims="time")
    rows = score(
        xr.Dataset({"nino34": y + 1}),
        xr.Dataset({"nino34": y}),
        None,
        None,
        model="m",
        task="index",
        split="val",
    )
    assert {r["metric"]: r["value"] for r in rows} == {"rmse": 1.0, "corr": pytest.approx(1.0)}
    assert rows[0]["split"] == "val"


def test_score_aligns_a_monthly_climatology(case):
    pred, truth, other = case
    clim = climatology(xr.Dataset({"tas": other}))  # one mean per month present
    rows = score(
        xr.Dataset({"tas": pred}), xr.Dataset({"tas": truth}), clim, None, model="m", task="t"
    )
    aligned = climatology_at(clim, truth.time).tas
    got = {r["metric"]: r["value"] for r in rows}
    assert got["skill"] == pytest.approx(skill(pred, truth, aligned))


def test_score_refuses_a_missing_variable(case):
    pred, truth, _ = case
    with pytest.raises(ClimatuneError, match="lack variable 'tas'"):
        score(
            xr.Dataset({"psl": pred}), xr.Dataset({"tas": truth}), None, None, model="m", task="t"
        )
