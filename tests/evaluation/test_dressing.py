"""Kernel dressing of network ensembles: truths on synthetic ensembles of known noise."""

from __future__ import annotations

import numpy as np
import xarray as xr

from climatune.evaluation.metrics import lat_weights
from climatune.evaluation.probabilistic import dress_members, ensemble_rows, kernel_spread
from climatune.report.tables import probabilistic_lines

LAT, LON = np.array([-60.0, -20.0, 20.0, 60.0]), np.arange(0.0, 360.0, 45.0)
NOISE = np.array([0.5, 1.0, 1.5, 2.0])[:, None] * np.ones(LON.size)  # the truth's, per cell


def _weights() -> xr.DataArray:
    lat = lat_weights(xr.DataArray(LAT, dims="lat", coords={"lat": LAT}))
    return lat * xr.ones_like(xr.DataArray(LON, dims="lon", coords={"lon": LON}))


def _case(times: int, members: int, spread: float, seed: int) -> tuple[xr.Dataset, xr.Dataset]:
    """Truth = signal + N(0, NOISE²); members = signal + N(0, spread²): over-confident
    whenever ``spread`` is below NOISE, as deep ensembles of one start are."""
    rng = np.random.default_rng(seed)
    shape = (times, LAT.size, LON.size)
    signal = rng.normal(0.0, 3.0, shape)
    coords = {"lat": LAT, "lon": LON}
    truth = xr.Dataset(
        {"tas": (("time", "lat", "lon"), signal + NOISE * rng.normal(size=shape))}, coords
    )
    ens = signal[None] + spread * rng.normal(size=(members, *shape))
    return xr.Dataset({"tas": (("member", "time", "lat", "lon"), ens)}, coords), truth


def _scores(fcst: xr.Dataset, truth: xr.Dataset) -> dict[str, float]:
    rows = ensemble_rows(fcst, truth, _weights(), model="m", task="t", split="test")
    return {r["metric"]: r["value"] for r in rows}


def test_the_kernel_spread_is_the_error_the_members_do_not_cover():
    members, truth = _case(times=4000, members=3, spread=0.0, seed=1)
    np.testing.assert_allclose(kernel_spread(members, truth).tas, NOISE, rtol=0.05)
    members, truth = _case(times=4000, members=3, spread=0.6, seed=2)
    # the variance the mean's error has beyond the members' own spread
    expected = NOISE**2 + 0.6**2 / 3 - 0.6**2
    np.testing.assert_allclose(
        kernel_spread(members, truth).tas ** 2, expected, rtol=0.05, atol=0.05
    )
    calibrated, truth = _case(times=4000, members=8, spread=3.0, seed=3)
    assert float(kernel_spread(calibrated, truth).tas.max()) == 0.0  # spread enough already


def test_dressing_an_over_confident_ensemble_calibrates_it_on_new_times():
    train, train_truth = _case(times=300, members=3, spread=0.05, seed=4)
    test, truth = _case(times=300, members=3, spread=0.05, seed=5)
    dressed = dress_members(test, kernel_spread(train, train_truth))
    assert dressed.sizes["member"] == 18 and list(dressed.member.values) == list(range(18))
    np.testing.assert_allclose(dressed.tas.mean("member"), test.tas.mean("member"), atol=1e-9)
    raw, better = _scores(test, truth), _scores(dressed, truth)
    assert raw["spread_skill"] < 0.1 and 0.9 < better["spread_skill"] < 1.1
    assert better["crps"] < 0.8 * raw["crps"] and better["pit_alpha"] < raw["pit_alpha"] / 3


def test_a_dressed_network_is_reported_as_the_network_not_as_a_baseline():
    def row(model: str, metric: str, value: float) -> dict:
        return {
            "model": model,
            "variable": "tas",
            "metric": metric,
            "value": value,
            "split": "test",
        }

    rows = [
        row("finetuned_dressed", "crps", 0.169),
        row("finetuned_dressed", "spread_skill", 0.81),
        row("ridge_dressed", "crps", 0.175),
        row("finetuned", "crps", 0.229),
        row("finetuned", "spread_skill", 0.11),
    ]
    lines = probabilistic_lines(rows, {"tas": "K"})
    assert lines == [
        "tas finetuned ensemble dressed: CRPS 0.169 K (best probabilistic baseline ridge_dressed: 0.175 K), spread/skill 0.81",
        "tas finetuned ensemble: CRPS 0.229 K (best probabilistic baseline ridge_dressed: 0.175 K), spread/skill 0.11",
    ]
