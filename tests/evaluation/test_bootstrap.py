"""Paired block-bootstrap intervals: coverage on errors of known size, weights, seeds."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from climatune.evaluation.bootstrap import (
    INTERVAL_KEYS,
    block_length,
    comparison_rows,
    paired_interval,
)
from climatune.evaluation.metrics import rmse, squared_errors


def _ar1(rng: np.random.Generator, n: int, rho: float, cells: int) -> np.ndarray:
    """``(n, cells)`` unit-variance AR(1) series in time."""
    x = np.empty((n, cells))
    x[0] = rng.standard_normal(cells)
    for t in range(1, n):
        x[t] = rho * x[t - 1] + np.sqrt(1 - rho**2) * rng.standard_normal(cells)
    return x


def _field(values: np.ndarray, lat: tuple[float, ...] = (0.0, 30.0, 60.0)) -> xr.DataArray:
    return xr.DataArray(
        values.reshape(len(values), len(lat), -1),
        coords={"time": np.arange(len(values)), "lat": list(lat)},
        dims=("time", "lat", "lon"),
    )


def _coverage(sigma_a: float, sigma_b: float, *, n: int, rho: float, reps: int) -> float:
    """Share of seeded repetitions whose interval covers the true RMSE difference."""
    hits = 0
    for rep in range(reps):
        rng = np.random.default_rng(rep)
        a = squared_errors(_field(sigma_a * _ar1(rng, n, rho, 6)), _field(np.zeros((n, 6))))
        b = squared_errors(_field(sigma_b * _ar1(rng, n, rho, 6)), _field(np.zeros((n, 6))))
        iv = paired_interval(a, b, n_resamples=500, seed=rep)
        hits += iv.low <= sigma_a - sigma_b <= iv.high
    return hits / reps


@pytest.mark.parametrize("rho", [0.0, 0.5])
def test_interval_covers_the_true_difference_at_about_95_percent(rho: float) -> None:
    # A's errors have standard deviation 1 K, B's 1.3 K: the true RMSE difference is -0.3 K.
    assert 0.90 <= _coverage(1.0, 1.3, n=40, rho=rho, reps=200) <= 0.99


def test_equal_predictors_are_not_significant_about_95_percent_of_the_time() -> None:
    assert 0.90 <= _coverage(1.0, 1.0, n=40, rho=0.5, reps=200) <= 0.99


def test_a_clear_gain_is_significant_and_a_tie_is_not() -> None:
    rng = np.random.default_rng(7)
    zero = _field(np.zeros((30, 6)))
    good = squared_errors(_field(_ar1(rng, 30, 0.5, 6)), zero)
    bad = squared_errors(_field(2.0 * _ar1(rng, 30, 0.5, 6)), zero)
    same = squared_errors(_field(_ar1(rng, 30, 0.5, 6)), zero)
    gain = paired_interval(good, bad)
    assert gain.significant and gain.high < 0 and -1.4 < gain.diff < -0.6
    tie = paired_interval(good, same)
    assert not tie.significant and tie.low < 0 < tie.high
    assert (gain.n_times, gain.level, gain.seed) == (30, 0.95, 0)


def test_the_seed_makes_the_interval_reproducible() -> None:
    rng = np.random.default_rng(1)
    zero = _field(np.zeros((30, 6)))
    a = squared_errors(_field(_ar1(rng, 30, 0.3, 6)), zero)
    b = squared_errors(_field(1.2 * _ar1(rng, 30, 0.3, 6)), zero)
    assert paired_interval(a, b, seed=3) == paired_interval(a, b, seed=3)
    assert paired_interval(a, b, seed=3).low != paired_interval(a, b, seed=4).low
    assert paired_interval(a, b, seed=3).diff == paired_interval(a, b, seed=4).diff


def test_squared_errors_are_region_weighted_like_rmse() -> None:
    rng = np.random.default_rng(2)
    pred = _field(rng.standard_normal((5, 6)))
    truth = _field(np.zeros((5, 6)))
    weights = xr.DataArray(
        [[1.0, 0.0], [0.5, 0.5], [0.2, 0.0]],
        coords={"lat": [0.0, 30.0, 60.0]},
        dims=("lat", "lon"),
    )
    errors, norms = squared_errors(pred, truth, weights)
    assert errors.shape == norms.shape == (5,)
    assert np.sqrt(errors.sum() / norms.sum()) == pytest.approx(rmse(pred, truth, weights))
    assert np.sqrt(errors.sum() / norms.sum()) != pytest.approx(rmse(pred, truth))
    series = xr.DataArray([1.0, np.nan, 3.0], dims="time")
    e, w = squared_errors(series, xr.zeros_like(series))
    assert e.tolist() == [1.0, 0.0, 9.0] and w.tolist() == [1.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("diff", "expected"),
    [
        (np.tile([1.0, -1.0], 15), 3),  # no positive autocorrelation: floor(30 ** (1/3))
        (np.repeat([1.0, -1.0], 15), 15),  # rho = 0.9: capped at n // 2
        (np.sin(np.arange(60) / 0.8), 7),  # rho 0.309: 2 * 0.8872 * 60 ** (1/3) = 6.95
        (np.sin(np.arange(60) / 1.5), 23),  # rho 0.774: 2 * 2.817 * 60 ** (1/3) = 22.06
    ],
)
def test_block_length_follows_the_lag1_autocorrelation(diff: np.ndarray, expected: int) -> None:
    assert block_length(diff) == expected


def test_comparison_rows_pair_each_network_with_every_other_prediction() -> None:
    rng = np.random.default_rng(0)
    truth = xr.Dataset({"tas": _field(np.zeros((20, 6)))})
    preds = {
        m: xr.Dataset({"tas": _field(s * rng.standard_normal((20, 6)))})
        for m, s in (("finetuned", 1.0), ("scratch", 1.5), ("bilinear", 3.0))
    }
    rows = comparison_rows(preds, truth, None, ["finetuned"], task="downscale")
    assert [(r["model"], r["reference"]) for r in rows] == [
        ("finetuned", "scratch"),
        ("finetuned", "bilinear"),
    ]
    for r in rows:
        assert set(INTERVAL_KEYS) <= set(r) and r["metric"] == "rmse_diff"
        own, ref = (
            rmse(preds["finetuned"].tas, truth.tas),
            rmse(preds[r["reference"]].tas, truth.tas),
        )
        assert r["value"] == pytest.approx(own - ref)
        assert r["ci_low"] < r["value"] < r["ci_high"] < 0
        assert (r["n_times"], r["seed"], r["block_length"]) == (20, 0, 2)
