"""Baselines on tiny synthetic tasks whose right answer is known by construction."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from climatune.data.grid import coarsen_bilinear
from climatune.errors import ClimatuneError
from climatune.evaluation.baselines import (
    BASELINES,
    Baseline,
    _fit_cells,
    _predict_cells,
    baselines_for,
    make_baseline,
)
from climatune.evaluation.climatology import view_climatology
from climatune.evaluation.metrics import index_rmse, rmse, score

KINDS = ("forecast", "downscale", "index", "reconstruct")
CASES = [(kind, name) for kind in KINDS for name in baselines_for(kind)]
LAT8 = np.arange(-35.0, 40.0, 10.0)
LON8 = np.arange(0.0, 360.0, 45.0)


def test_registry_lists_the_baselines_of_each_kind():
    assert set(BASELINES) == {
        "climatology",
        "persistence",
        "damped_persistence",
        "recent_mean",
        "linear_trend",
        "ridge",
        "bilinear",
        "bilinear_residual",
    }
    down = baselines_for("downscale")
    assert {"bilinear", "bilinear_residual", "climatology", "ridge", "linear_trend"} == set(down)
    assert "persistence" not in down and "recent_mean" not in down
    assert set(baselines_for("forecast")) == {
        "climatology",
        "persistence",
        "damped_persistence",
        "recent_mean",
        "linear_trend",
        "ridge",
    }
    assert set(baselines_for("index")) == {
        "climatology",
        "persistence",
        "damped_persistence",
        "recent_mean",
        "linear_trend",
        "ridge",
    }
    assert baselines_for("reconstruct") == ["climatology"]


def test_make_baseline_stores_arguments_and_suggests_names():
    b = make_baseline("recent_mean", k=5)
    assert b.k == 5 and not hasattr(b, "k_")
    assert repr(b) == "RecentMean(k=5)"
    with pytest.raises(ClimatuneError, match="did you mean 'persistence'"):
        make_baseline("persistance")


def test_a_baseline_refuses_a_task_it_does_not_apply_to(annual_view):
    with pytest.raises(ClimatuneError, match="does not apply to forecast"):
        make_baseline("bilinear").fit(annual_view("forecast"))
    with pytest.raises(RuntimeError, match="not fitted"):
        make_baseline("climatology").predict(annual_view("forecast"), "test")


@pytest.mark.parametrize(("kind", "name"), CASES)
def test_predictions_are_shaped_like_the_truth(annual_view, kind, name):
    view = annual_view(kind)
    model = make_baseline(name)
    assert model.fit(view) is model
    for split in ("val", "test"):
        pred, truth = model.predict(view, split), view.truth(split)
        assert list(pred.data_vars) == list(truth.data_vars)
        for var, y in truth.data_vars.items():
            assert pred[var].dims == y.dims
            assert pred[var].attrs == y.attrs
            for coord in y.coords:
                xr.testing.assert_identical(pred[var][coord], y[coord])
            # NaN exactly where the truth is NaN: masked, never filled, never dropped
            np.testing.assert_array_equal(np.isnan(pred[var].values), np.isnan(y.values))


def test_persistence_repeats_the_anchor_step_of_annual_data(make_fields, make_view, time_axis):
    n = 20
    steps = np.arange(n, dtype=float)[:, None, None] * 10 + np.arange(4.0).reshape(1, 2, 2)
    time = time_axis(n, monthly=False)
    ds = make_fields({"tas": steps}, time, [0.0, 60.0], [0.0, 180.0])
    view = make_view("forecast", ds, blocks={"train": (0, 9), "test": (12, 19)}, history=3, lead=2)
    pred = make_baseline("persistence").fit(view).predict(view, "test")
    truth = view.truth("test")
    np.testing.assert_allclose(pred.tas.values, truth.tas.values - 10 * 2)  # two steps behind
    np.testing.assert_allclose(pred.tas.values[:, 0, 0], 10 * np.arange(14, 18))


def _seasonal_view(make_fields, make_view, time_axis, values, *, lead, train=(0, 59)):
    n = values.shape[0]
    ds = make_fields({"tas": values}, time_axis(n, monthly=True), [0.0, 60.0], [0.0, 180.0])
    blocks = {"train": train, "test": (train[1] + 1, n - 1)}
    return make_view("forecast", ds, blocks=blocks, history=1, lead=lead)


def test_sub_annual_persistence_persists_the_anomaly_not_the_season(
    rng, make_fields, make_view, time_axis
):
    n, lead = 96, 2
    cycle = 10 * rng.normal(size=(12, 2, 2))
    values = cycle[np.arange(n) % 12] + rng.normal(size=(n, 2, 2))
    view = _seasonal_view(make_fields, make_view, time_axis, values, lead=lead)
    clim = np.stack([values[:60][np.arange(60) % 12 == m].mean(0) for m in range(12)])
    anchors = view.anchors["test"]
    anomaly = values[anchors] - clim[anchors % 12]
    want = {
        "persistence": clim[(anchors + lead) % 12] + anomaly,
        "recent_mean": clim[(anchors + lead) % 12]
        + np.stack(
            [(values[a - 2 : a + 1] - clim[np.arange(a - 2, a + 1) % 12]).mean(0) for a in anchors]
        ),
    }
    want["recent_mean"][0] = clim[(anchors[0] + lead) % 12] + anomaly[0]  # the block starts at t
    want["recent_mean"][1] = clim[(anchors[1] + lead) % 12] + (
        values[anchors[1] - 1 : anchors[1] + 1]
        - clim[np.arange(anchors[1] - 1, anchors[1] + 1) % 12]
    ).mean(0)
    for name, expected in want.items():
        pred = make_baseline(name).fit(view).predict(view, "test")
        np.testing.assert_allclose(pred.tas.values, expected, rtol=1e-12, err_msg=name)
    raw = values[anchors]  # persisting raw values across the seasonal cycle: far worse
    truth = view.truth("test").tas.values
    assert rmse_np(want["persistence"], truth) < 0.5 * rmse_np(raw, truth)


def rmse_np(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


@pytest.mark.parametrize("lead", [1, 3])
def test_damped_persistence_reaches_the_theoretical_rmse_of_an_ar1_anomaly(
    rng, make_fields, make_view, time_axis, lead
):
    """Seasonal cycle + AR(1) anomaly (phi 0.8, unit variance): the optimal linear forecast
    at lead L has RMSE sqrt(1 - phi^2L); raw-anomaly persistence sqrt(2 (1 - phi^L))."""
    phi, years, cells = 0.8, 160, 4
    n = 12 * years
    a = np.empty((n, cells))
    a[0] = rng.normal(size=cells)
    for t in range(1, n):
        a[t] = phi * a[t - 1] + np.sqrt(1 - phi**2) * rng.normal(size=cells)
    cycle = 15 * np.sin(2 * np.pi * np.arange(12) / 12)[:, None] + np.arange(cells) * 3
    values = (cycle[np.arange(n) % 12] + a).reshape(n, 2, 2)
    view = _seasonal_view(
        make_fields, make_view, time_axis, values, lead=lead, train=(0, 12 * 120 - 1)
    )
    truth = view.truth("test").tas.values
    got = {
        name: rmse_np(make_baseline(name).fit(view).predict(view, "test").tas.values, truth)
        for name in ("damped_persistence", "persistence", "climatology")
    }
    assert got["damped_persistence"] == pytest.approx(np.sqrt(1 - phi ** (2 * lead)), rel=0.05)
    assert got["persistence"] == pytest.approx(np.sqrt(2 * (1 - phi**lead)), rel=0.05)
    assert (
        got["damped_persistence"] < got["persistence"]
        and got["damped_persistence"] < got["climatology"]
    )
    rho = make_baseline("damped_persistence").fit(view).rho_["tas"]
    assert rho.shape == (12, cells)
    assert abs(rho.mean() - phi**lead) < 0.04 and np.abs(rho - phi**lead).max() < 0.3


def test_damped_persistence_damps_on_a_short_training_period(
    rng, make_fields, make_view, time_axis
):
    """Fifteen training months: one or two samples per calendar month, whose anomalies
    from their own climatology are near zero. Their ratio is clipped to [-1, 1], so the
    forecast stays within one anomaly of the climatology (it was hundreds of K off)."""
    n = 15 + 36
    cycle = 10 * rng.normal(size=(12, 2, 2))
    values = cycle[np.arange(n) % 12] + rng.normal(size=(n, 2, 2))
    view = _seasonal_view(make_fields, make_view, time_axis, values, lead=1, train=(0, 14))
    model = make_baseline("damped_persistence").fit(view)
    assert np.abs(model.rho_["tas"]).max() <= 1.0
    clim = make_baseline("climatology").fit(view).predict(view, "test").tas.values
    pred = model.predict(view, "test").tas.values
    past = make_baseline("persistence").fit(view).predict(view, "test").tas.values
    # the same anomaly at t, damped: never further from the climatology than persistence
    assert np.all(np.abs(pred - clim) <= np.abs(past - clim) + 1e-9)
    assert rmse_np(pred, view.truth("test").tas.values) < 3.0  # unit noise, no blow-up


def test_damped_persistence_of_annual_data_and_an_index(annual_view):
    for kind in ("forecast", "index"):
        view = annual_view(kind)
        model = make_baseline("damped_persistence").fit(view)
        name = view.targets[0]
        assert model.rho_[name].shape[0] == 1  # one calendar unit for annual data
        pred = model.predict(view, "test")[name].values
        clim = view.target_data()[name].isel(time=view.steps("train")).mean("time").values
        now = view.target_data()[name].isel(time=view.anchors["test"]).values
        rho = model.rho_[name][0].reshape(np.shape(clim))
        np.testing.assert_allclose(
            pred, np.where(np.isnan(pred), np.nan, clim + rho * (now - clim))
        )


def test_persistence_of_an_index(annual_view):
    view = annual_view("index")
    pred = make_baseline("persistence").fit(view).predict(view, "test")
    np.testing.assert_array_equal(pred.nino34.values, view.index.values[view.anchors["test"]])


def test_climatology_is_the_training_mean_per_month(rng, make_fields, make_view, time_axis):
    n = 96  # 8 years, monthly, noleap
    time = time_axis(n, monthly=True, calendar="noleap")
    cycle = 10 * rng.normal(size=(12, 2, 2))
    values = cycle[np.arange(n) % 12] + rng.normal(size=(n, 2, 2))
    view = make_view(
        "forecast",
        make_fields({"tas": values}, time, [0.0, 60.0], [0.0, 180.0]),
        blocks={"train": (0, 59), "test": (72, 95)},
        lead=1,
    )
    pred = make_baseline("climatology").fit(view).predict(view, "test")
    train = np.arange(60)  # the whole train block: 5 years
    want = np.stack([values[train][train % 12 == m].mean(0) for m in range(12)])
    np.testing.assert_allclose(pred.tas.values, want[(view.anchors["test"] + 1) % 12])

    # with no interannual noise the climatology is the seasonal cycle itself
    view.fields["tas"].values[:] = cycle[np.arange(n) % 12]
    pred = make_baseline("climatology").fit(view).predict(view, "test")
    np.testing.assert_allclose(pred.tas.values, view.truth("test").tas.values)


def test_climatology_baseline_has_zero_skill(annual_view):
    view = annual_view("forecast")
    np.testing.assert_array_equal(view.steps("train"), np.arange(20))  # the whole train block
    pred = make_baseline("climatology").fit(view).predict(view, "test")
    rows = score(
        pred,
        view.truth("test"),
        view_climatology(view),
        view.weights(),
        model="climatology",
        task="forecast",
    )
    skills = [r["value"] for r in rows if r["metric"] == "skill"]
    assert skills == [0.0, 0.0]


def test_recent_mean_reads_only_its_own_block(make_fields, make_view, time_axis):
    n = 40
    values = np.arange(n, dtype=float)
    values[:25] = 1e6  # everything before the test block: must never be read
    time = time_axis(n, monthly=False)
    ds = make_fields(
        {"tas": np.broadcast_to(values[:, None, None], (n, 2, 2)).copy()},
        time,
        [0.0, 60.0],
        [0.0, 90.0],
    )
    view = make_view("forecast", ds, blocks={"train": (0, 19), "test": (25, 39)}, history=2, lead=1)
    pred = make_baseline("recent_mean", k=4).fit(view).predict(view, "test")
    anchors = view.anchors["test"]
    assert anchors[0] == 26  # block start 25 = first anchor - (history - 1)
    want = [np.mean(np.arange(max(25, a - 3), a + 1)) for a in anchors]
    np.testing.assert_allclose(pred.tas.values[:, 0, 0], want)
    assert want[0] == 25.5 and want[-1] == np.mean([35, 36, 37, 38])


def test_linear_trend_recovers_a_planted_trend(rng, make_fields, make_view, time_axis):
    n = 30  # annual, noleap: every year is 365 days, so a per-year trend is linear in time
    time = time_axis(n, monthly=False, calendar="noleap")
    a, b = 280 + rng.normal(size=(2, 2)), rng.normal(size=(2, 2))
    values = a + b * np.arange(n)[:, None, None]
    values[:, 1, 1] = np.nan
    view = make_view(
        "forecast",
        make_fields({"tas": values}, time, [0.0, 60.0], [0.0, 180.0]),
        blocks={"train": (0, 19), "test": (22, 29)},
        lead=2,
    )
    pred = make_baseline("linear_trend").fit(view).predict(view, "test")
    np.testing.assert_allclose(pred.tas.values, view.truth("test").tas.values, rtol=0, atol=1e-8)


def test_linear_trend_keeps_the_seasonal_cycle_of_monthly_data(
    rng, make_fields, make_view, time_axis
):
    n = 120  # 10 years, 360_day months: 30 days each
    time = time_axis(n, monthly=True, calendar="360_day")
    cycle, slope = 5 * rng.normal(size=(12, 2, 2)), rng.normal(size=(2, 2))
    values = cycle[np.arange(n) % 12] + slope * (np.arange(n) / 12)[:, None, None]
    view = make_view(
        "downscale",
        make_fields({"tas": values}, time, [0.0, 60.0], [0.0, 180.0]),
        blocks={"train": (0, 83), "test": (96, 119)},
        factor=1,
    )
    trend = make_baseline("linear_trend").fit(view)
    np.testing.assert_allclose(
        trend.predict(view, "test").tas.values, view.truth("test").tas.values, atol=1e-8
    )


def _planted_forecast(rng, n, make_fields, time_axis):
    """tas(t+1) = c0 + c1 tas(t) + c2 psl(t) + c3 psl(t-1), exactly, per cell."""
    psl = rng.normal(size=(n, 3, 4))
    c = rng.uniform(-0.5, 0.5, size=(4, 3, 4))
    tas = np.zeros((n, 3, 4))
    tas[:2] = rng.normal(size=(2, 3, 4))
    for t in range(1, n - 1):
        tas[t + 1] = c[0] + c[1] * tas[t] + c[2] * psl[t] + c[3] * psl[t - 1]
    tas[:, 0, 0] = np.nan  # a land cell
    lat, lon = np.array([-30.0, 0.0, 30.0]), np.array([0.0, 90.0, 180.0, 270.0])
    return make_fields({"tas": tas, "psl": psl}, time_axis(n, monthly=True), lat, lon)


def test_ridge_recovers_a_planted_linear_forecast(rng, make_fields, make_view, time_axis):
    ds = _planted_forecast(rng, 80, make_fields, time_axis)
    view = make_view(
        "forecast",
        ds,
        blocks={"train": (0, 59), "test": (63, 79)},
        targets=["tas"],
        history=2,
        lead=1,
    )
    truth = view.truth("test").tas
    pred = make_baseline("ridge").fit(view).predict(view, "test").tas
    assert rmse(pred, truth) < 1e-4 * float(truth.std())
    persistence = make_baseline("persistence").fit(view).predict(view, "test").tas
    assert rmse(persistence, truth) > 0.1 * float(truth.std())


def test_ridge_recovers_a_planted_index(rng, make_fields, make_view, time_axis):
    n = 80
    ds = make_fields(
        {"tas": rng.normal(size=(n, 3, 4)), "psl": rng.normal(size=(n, 3, 4))},
        time_axis(n, monthly=True),
        [-30.0, 0.0, 30.0],
        [0.0, 90.0, 180.0, 270.0],
    )
    beta = rng.normal(size=(2, 3, 4))
    index = np.full(n, np.nan)
    index[1:] = (
        0.5
        + np.einsum("tij,ij->t", ds.tas.values[:-1], beta[0])
        + np.einsum("tij,ij->t", ds.psl.values[:-1], beta[1])
    )  # index(t + 1) from the fields at t
    series = xr.DataArray(index, coords={"time": ds.time.values}, dims="time", name="nino34")
    view = make_view(
        "index", ds, blocks={"train": (0, 59), "test": (63, 79)}, index=series, history=2, lead=1
    )
    truth = view.truth("test").nino34
    ridge = make_baseline("ridge").fit(view)
    assert ridge.components_.shape[0] <= 50
    assert index_rmse(ridge.predict(view, "test").nino34, truth) < 1e-4 * float(truth.std())
    few = make_baseline("ridge", n_components=3).fit(view)
    assert few.components_.shape[0] == 3
    assert index_rmse(few.predict(view, "test").nino34, truth) > 0.1 * float(truth.std())


def _downscale_view(
    rng, make_fields, make_view, time_axis, *, monthly: bool, multiplicative: bool = False
):
    """Fine fields = a large-scale signal A(t) plus a fixed fine-scale pattern (per month
    for monthly data), or times (1 + pattern); an 8×8 grid coarsened by 2, a land cell."""
    n = 96 if monthly else 40
    time = time_axis(n, monthly=monthly)
    big = 280 + 3 * rng.normal(size=n)[:, None, None]
    pattern = rng.normal(size=(12 if monthly else 1, 8, 8))[
        np.arange(n) % 12 if monthly else np.zeros(n, int)
    ]
    fine = big * (1 + 0.01 * pattern) if multiplicative else big + pattern
    fine[:, 2, 3] = np.nan
    ds = make_fields({"tas": fine}, time, LAT8, LON8)
    blocks = (
        {"train": (0, 71), "test": (72, 95)} if monthly else {"train": (0, 29), "test": (30, 39)}
    )
    return make_view("downscale", ds, blocks=blocks, factor=2)


@pytest.mark.parametrize("monthly", [False, True])
def test_bilinear_residual_restores_a_fixed_fine_pattern(
    rng, make_fields, make_view, time_axis, monthly
):
    view = _downscale_view(rng, make_fields, make_view, time_axis, monthly=monthly)
    truth = view.truth("test").tas
    bilinear = make_baseline("bilinear").fit(view).predict(view, "test").tas
    want = (
        coarsen_bilinear(view.fields.tas, 2).isel(time=view.anchors["test"]).where(truth.notnull())
    )
    xr.testing.assert_allclose(bilinear, want)
    residual = make_baseline("bilinear_residual").fit(view).predict(view, "test").tas
    np.testing.assert_allclose(residual.values, truth.values, atol=1e-9)  # NaN cell included
    assert rmse(bilinear, truth) > 0.3 and rmse(residual, truth) < 1e-9


def test_ridge_downscales_a_multiplicative_pattern_that_bcsd_misses(
    rng, make_fields, make_view, time_axis
):
    view = _downscale_view(
        rng, make_fields, make_view, time_axis, monthly=False, multiplicative=True
    )
    truth = view.truth("test").tas
    ridge = make_baseline("ridge").fit(view).predict(view, "test").tas
    residual = make_baseline("bilinear_residual").fit(view).predict(view, "test").tas
    assert rmse(ridge, truth) < 0.01 * rmse(residual, truth)
    exact = make_baseline("ridge", alpha=1e-10).fit(view).predict(view, "test").tas
    assert rmse(exact, truth) < 1e-6 < rmse(residual, truth)


def test_a_baseline_without_predictions_cannot_be_built():
    class FitOnly(Baseline):
        name = "fit_only"
        kinds = ("forecast",)

    with pytest.raises(TypeError, match="abstract.*_predict"):
        FitOnly()


def test_the_cell_ridge_penalty_minimises_gcv_by_the_hat_matrix(rng):
    n, p, cells = 30, 6, 4
    x = rng.normal(size=(n, p, cells))
    y = 0.5 * x[:, 0] + rng.normal(size=(n, cells))
    (keep, mean, std, coef, y_bar), _ = _fit_cells(x, y, alpha=None)
    for c in range(cells):
        z = (x[:, :, c] - mean[0, :, c]) / std[:, c]
        dy = y[:, c] - y_bar[0, c]

        def fit(alpha, z=z, dy=dy):
            hat = z @ np.linalg.solve(z.T @ z + alpha * np.eye(p), z.T)
            rss = np.sum((dy - hat @ dy) ** 2)
            return rss / (n - 1 - np.trace(hat)) ** 2, np.linalg.solve(
                z.T @ z + alpha * np.eye(p), z.T @ dy
            )

        alphas = np.linalg.eigvalsh(z.T @ z).mean() * 10.0 ** np.arange(-10.0, 4.0)
        gcv = [fit(a)[0] for a in alphas]
        np.testing.assert_allclose(coef[:, c], fit(alphas[int(np.argmin(gcv))])[1], rtol=1e-8)


def test_the_cell_ridge_shrinks_where_few_samples_meet_many_features(rng):
    # 20 samples, 12 noise features and one weak signal: least squares overfits
    n, p, cells = 20, 13, 50
    x = rng.normal(size=(2 * n, p, cells))
    y = 0.3 * x[:, 0] + rng.normal(size=(2 * n, cells))
    train, test = slice(0, n), slice(n, 2 * n)

    def test_mse(alpha):
        fitted, _ = _fit_cells(x[train], y[train], alpha)
        return np.mean((_predict_cells(x[test], *fitted) - y[test]) ** 2)

    assert test_mse(None) < 0.8 * test_mse(1e-10)


def _seasonal_forecast(rng, n, make_fields, time_axis):
    """Monthly fields: a 10 K seasonal cycle plus an AR(1) anomaly (0.6 a month) and
    weather noise, and a second variable that only shares the cycle."""
    month = np.arange(n) % 12
    cycle = 10.0 * np.cos(2 * np.pi * month / 12)[:, None, None]
    anomaly = np.zeros((n, 3, 4))
    for t in range(1, n):
        anomaly[t] = 0.6 * anomaly[t - 1] + rng.normal(size=(3, 4))
    tas = cycle + anomaly + 0.5 * rng.normal(size=(n, 3, 4))
    psl = -cycle + rng.normal(size=(n, 3, 4))
    lat, lon = np.array([-30.0, 0.0, 30.0]), np.array([0.0, 90.0, 180.0, 270.0])
    return make_fields({"tas": tas, "psl": psl}, time_axis(n, monthly=True), lat, lon)


def test_ridge_fits_monthly_departures_from_the_seasonal_cycle(
    rng, make_fields, make_view, time_axis
):
    # The raw fit spends its slopes on the cycle and amplifies the noise through it;
    # month by month, the slopes fit the anomaly's persistence.
    ds = _seasonal_forecast(rng, 360, make_fields, time_axis)
    blocks = {"train": (0, 239), "test": (240, 359)}
    view = make_view("forecast", ds, blocks=blocks, targets=["tas"], history=3, lead=1)
    truth = view.truth("test").tas
    ridge = make_baseline("ridge").fit(view)
    score = {
        name: rmse(make_baseline(name).fit(view).predict(view, "test").tas, truth)
        for name in ("climatology", "damped_persistence")
    }
    raw = rmse(make_baseline("ridge", per_month=False).fit(view).predict(view, "test").tas, truth)
    got = rmse(ridge.predict(view, "test").tas, truth)
    assert ridge.per_month_.mean() > 0.75
    assert got < 0.9 * score["climatology"] and got < 1.05 * score["damped_persistence"]
    # measured: 1.18 K per month, 1.32 raw, climatology 1.38, damped persistence 1.21
    assert got < 0.95 * raw
