"""Summaries of a Gaussian head's predictive distribution: quantiles and quantile members.

One network with a Gaussian head predicts N(μ, σ²) per cell; an ensemble of them predicts
the equal mixture of its members' Gaussians. Quantiles of one Gaussian are closed-form,
μ + σ Φ⁻¹(q); those of a mixture are found by bisection on its CDF, to well below the
float32 resolution of the predictions.

Examples
--------
>>> import xarray as xr
>>> mean = xr.DataArray([[0.0]], dims=("member", "time"))
>>> std = xr.DataArray([[2.0]], dims=("member", "time"))
>>> round(float(gaussian_quantiles(mean, std, [0.975]).squeeze()), 3)
3.92
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from scipy.stats import norm

__all__ = ["QUANTILE_MEMBERS", "gaussian_quantiles", "quantile_members"]

#: Equally spaced quantile draws per member when a Gaussian head is scored as an ensemble.
QUANTILE_MEMBERS = 20
_BISECTIONS = 60


def gaussian_quantiles(
    mean: xr.DataArray, std: xr.DataArray, quantiles: Sequence[float]
) -> xr.DataArray:
    """The ``quantiles`` of the equal mixture of N(mean_k, std_k²) over ``member``.

    ``mean`` and ``std`` share their dimensions, ``member`` among them; the result has a
    leading ``quantile`` dimension in its place. With one member the quantiles are
    closed-form; with several, the mixture's CDF is solved by bisection.
    """
    mean, std = xr.broadcast(mean.transpose("member", ...), std.transpose("member", ...))
    mu, sigma = mean.values.astype(np.float64), std.values.astype(np.float64)
    levels = np.asarray(quantiles, dtype=np.float64)
    out = np.empty((levels.size, *mu.shape[1:]))
    for i, q in enumerate(levels):
        each = mu + sigma * norm.ppf(q)  # every member's own quantile
        if mu.shape[0] == 1:
            out[i] = each[0]
            continue
        lo, hi = each.min(0), each.max(0)  # the mixture's quantile lies between them
        for _ in range(_BISECTIONS):
            mid = 0.5 * (lo + hi)
            below = norm.cdf((mid - mu) / sigma).mean(0) < q
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        out[i] = 0.5 * (lo + hi)
    dims = ("quantile", *mean.dims[1:])
    coords = {k: v for k, v in mean.coords.items() if "member" not in v.dims}
    result = xr.DataArray(out.astype(mean.dtype), dims=dims, coords=coords, attrs=mean.attrs)
    return result.assign_coords(quantile=levels)


def quantile_members(
    mean: xr.Dataset, std: xr.Dataset, per_member: int = QUANTILE_MEMBERS
) -> xr.Dataset:
    """Each member's Gaussian as ``per_member`` equally spaced quantile draws.

    Draw j of member k is ``mean_k + std_k Φ⁻¹((j + 0.5) / per_member)``: no random draw,
    so scores of the draws repeat exactly (the dressed baselines are built the same way).
    The ``member`` dimension of the result numbers the ``members × per_member`` draws.
    """
    z = xr.DataArray(norm.ppf((np.arange(per_member) + 0.5) / per_member), dims="draw")
    draws = (mean + std * z).stack(draws=("member", "draw"))
    draws = draws.drop_vars(["draws", "member", "draw"]).rename(draws="member")
    return draws.transpose("member", ...)
