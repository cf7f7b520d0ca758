"""Climate metrics over xarray, exactly as DESIGN.md defines them.

Every field metric uses one weighting: the cell weights of the scored region (a task
view's :meth:`~climatune.data.view.TaskView.weights`, cos(latitude) inside the region and
0 outside it; :func:`lat_weights` everywhere when none are given) on the valid cells
(prediction and truth finite, weight above 0), normalised to mean 1 over them. Sums run
over the whole test set at once, never per batch.

Examples
--------
>>> import numpy as np, xarray as xr
>>> y = xr.DataArray(np.zeros((2, 2, 1)), coords={"lat": [0.0, 60.0]}, dims=("time", "lat", "lon"))
>>> rmse(y + 1.0, y)
1.0
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from climatune.data.grid import lat_weights, normalised_weights
from climatune.errors import ClimatuneError
from climatune.evaluation.climatology import climatology, climatology_at

__all__ = [
    "lat_weights",
    "rmse",
    "mae",
    "bias",
    "acc",
    "skill",
    "index_rmse",
    "correlation",
    "score",
    "squared_errors",
    "climatology",
    "climatology_at",
    "FIELD_METRICS",
    "INDEX_METRICS",
]

FIELD_METRICS = ("rmse", "mae", "bias", "acc", "skill")
INDEX_METRICS = ("rmse", "corr")


def _aligned(*arrays: xr.DataArray) -> tuple[xr.DataArray, ...]:
    """Refuse mismatched coordinates instead of silently scoring their intersection."""
    try:
        return xr.align(*arrays, join="exact")
    except ValueError as err:
        raise ValueError(
            f"prediction, truth, climatology and weights must share coordinates: {err}"
        ) from None


def _prepare(
    pred: xr.DataArray, truth: xr.DataArray, weights: xr.DataArray | None, *extra: xr.DataArray
) -> tuple[list[xr.DataArray], xr.DataArray, xr.DataArray]:
    """Aligned arrays, the valid-cell mask m and the weights w of a field metric.

    ``weights`` are the ``(lat, lon)`` cell weights of the scored region, 0 outside it;
    cos(latitude) on every cell when None.
    """
    arrays = list(_aligned(pred, truth, *extra))
    valid = np.isfinite(arrays[0])
    for a in arrays[1:]:
        valid = valid & np.isfinite(a)
    if weights is None:
        return arrays, valid, lat_weights(arrays[1].lat, valid)
    valid, weights = _aligned(valid, weights)
    valid = valid & (weights > 0)
    return arrays, valid, normalised_weights(weights, valid)


def _weighted_mean(x: xr.DataArray, w: xr.DataArray, valid: xr.DataArray) -> np.float64:
    """Σ w m x / Σ w m (``w`` is already 0 off the valid cells)."""
    return np.float64((w * x.where(valid, 0.0)).sum() / w.sum())


def rmse(pred: xr.DataArray, truth: xr.DataArray, weights: xr.DataArray | None = None) -> float:
    """sqrt(Σ_t Σ_ij w m (ŷ − y)² / Σ_t Σ_ij w m)."""
    (p, y), valid, w = _prepare(pred, truth, weights)
    return float(np.sqrt(_weighted_mean((p - y) ** 2, w, valid)))


def mae(pred: xr.DataArray, truth: xr.DataArray, weights: xr.DataArray | None = None) -> float:
    """Σ_t Σ_ij w m |ŷ − y| / Σ_t Σ_ij w m."""
    (p, y), valid, w = _prepare(pred, truth, weights)
    return float(_weighted_mean(abs(p - y), w, valid))


def bias(pred: xr.DataArray, truth: xr.DataArray, weights: xr.DataArray | None = None) -> float:
    """Weighted mean of ŷ − y: positive means the prediction is too warm or too high."""
    (p, y), valid, w = _prepare(pred, truth, weights)
    return float(_weighted_mean(p - y, w, valid))


def acc(
    pred: xr.DataArray,
    truth: xr.DataArray,
    clim: xr.DataArray,
    weights: xr.DataArray | None = None,
) -> float:
    """Anomaly correlation: the mean over t of Σ w a f / sqrt(Σ w f² Σ w a²) (uncentred).

    ``f = ŷ − clim`` and ``a = y − clim``, with ``clim`` the training climatology at the
    times of ``truth``. Steps with no valid cell are skipped; a step whose predicted or
    observed anomalies are all zero has no ACC and makes the result NaN (so the
    climatology itself has no ACC).
    """
    (p, y, c), valid, w = _prepare(pred, truth, weights, clim)
    f = (p - c).where(valid, 0.0)
    a = (y - c).where(valid, 0.0)
    space = [d for d in w.dims if d != "time"]
    with np.errstate(invalid="ignore", divide="ignore"):
        acc_t = (w * a * f).sum(space) / np.sqrt((w * f * f).sum(space) * (w * a * a).sum(space))
    if "time" in acc_t.dims:
        acc_t = acc_t.isel(time=np.flatnonzero(valid.any(space).values))
    return float(acc_t.mean(skipna=False))


def skill(
    pred: xr.DataArray,
    truth: xr.DataArray,
    clim: xr.DataArray,
    weights: xr.DataArray | None = None,
) -> float:
    """1 − MSE_model / MSE_climatology, over the same cells with the same weights."""
    (p, y, c), valid, w = _prepare(pred, truth, weights, clim)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(
            1.0 - _weighted_mean((p - y) ** 2, w, valid) / _weighted_mean((c - y) ** 2, w, valid)
        )


def squared_errors(
    pred: xr.DataArray, truth: xr.DataArray, weights: xr.DataArray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per time, Σ_ij w m (ŷ − y)² and Σ_ij w m: the terms of :func:`rmse`, one per step.

    RMSE is ``sqrt(sum(errors) / sum(norms))`` over any set of times, which is what a
    bootstrap over times resamples. A ``(time,)`` index series gets ``(ŷ − y)²`` and 1 on
    the times where both are finite, as :func:`index_rmse` weighs them.

    Examples
    --------
    >>> y = xr.DataArray(np.zeros((2, 2, 1)), coords={"lat": [0.0, 60.0]}, dims=("time", "lat", "lon"))
    >>> errors, norms = squared_errors(y + 1.0, y)
    >>> np.sqrt(errors.sum() / norms.sum())
    np.float64(1.0)
    """
    if truth.dims == ("time",):
        p, y = _aligned(pred, truth)
        valid = np.isfinite(p.values) & np.isfinite(y.values)
        return np.where(valid, (p.values - y.values) ** 2, 0.0), valid.astype(float)
    (p, y), valid, w = _prepare(pred, truth, weights)
    space = [d for d in w.dims if d != "time"]
    errors = (w * ((p - y) ** 2).where(valid, 0.0)).sum(space)
    return errors.values.astype(float), w.sum(space).broadcast_like(errors).values.astype(float)


def _series(pred: xr.DataArray, truth: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    pred, truth = _aligned(pred, truth)
    if pred.ndim != 1:
        raise ValueError(f"an index metric needs (time,) series, got dims {pred.dims}")
    p, t = np.asarray(pred, dtype=float), np.asarray(truth, dtype=float)
    ok = np.isfinite(p) & np.isfinite(t)
    if not ok.any():
        raise ClimatuneError("no time where both the predicted and the true index are finite")
    return p[ok], t[ok]


def index_rmse(pred: xr.DataArray, truth: xr.DataArray) -> float:
    """RMSE of a scalar index over the times where both series are finite."""
    p, t = _series(pred, truth)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def correlation(pred: xr.DataArray, truth: xr.DataArray) -> float:
    """Pearson correlation over time; NaN when either series is constant."""
    p, t = _series(pred, truth)
    dp, dt = p - p.mean(), t - t.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.sum(dp * dt) / np.sqrt(np.sum(dp**2) * np.sum(dt**2)))


def _clim_for(clim: xr.Dataset, name: str, times: xr.DataArray) -> xr.DataArray:
    if name not in clim:
        raise ClimatuneError(
            f"the climatology lacks variable '{name}'; it has: {', '.join(map(str, clim.data_vars))}"
        )
    da = clim[name]
    return da.sel(time=times) if "time" in da.dims else climatology_at(da, times)


def score(
    pred: xr.Dataset,
    truth: xr.Dataset,
    clim: xr.Dataset | None = None,
    weights: xr.DataArray | None = None,
    *,
    model: str,
    task: str,
    split: str = "test",
) -> list[dict]:
    """Score every variable of ``truth``: one row per (variable, metric).

    Fields get rmse, mae, bias and, given ``clim``, acc and skill; ``(time,)`` index
    series get rmse and corr. ``clim`` is a :func:`climatology` (or one already at the
    times of ``truth``); ``weights`` the ``(lat, lon)`` cell weights of the scored region
    (:meth:`~climatune.data.view.TaskView.weights`).

    Returns
    -------
    Rows ``{model, task, variable, metric, value, split}``.
    """
    rows = []
    for name, y in truth.data_vars.items():
        if name not in pred:
            raise ClimatuneError(
                f"the predictions of '{model}' lack variable '{name}'; they have: {', '.join(map(str, pred.data_vars))}"
            )
        yhat = pred[name]
        if y.dims == ("time",):
            values = {"rmse": index_rmse(yhat, y), "corr": correlation(yhat, y)}
        else:
            values = {
                "rmse": rmse(yhat, y, weights),
                "mae": mae(yhat, y, weights),
                "bias": bias(yhat, y, weights),
            }
            if clim is not None:
                c = _clim_for(clim, str(name), y.time)
                values |= {"acc": acc(yhat, y, c, weights), "skill": skill(yhat, y, c, weights)}
        rows += [
            {
                "model": model,
                "task": task,
                "variable": str(name),
                "metric": k,
                "value": v,
                "split": split,
            }
            for k, v in values.items()
        ]
    return rows
