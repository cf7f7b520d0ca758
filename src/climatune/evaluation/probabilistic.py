"""Probabilistic scores of ensembles, and the probabilistic baselines they must beat.

The scores come from the ``scores`` package (Bureau of Meteorology), not written here:
the fair CRPS (:func:`scores.probability.crps_for_ensemble`, ``method="fair"``), the rank
histogram (:func:`scores.probability.rank_histogram`) and the PIT
(:class:`scores.probability.Pit`). ``scores`` takes xarray objects with named dimensions and
cell weights, as the rest of the evaluation does, and keeps the ensemble dimension by name;
``xskillscore`` would do too, but ``scores`` is the one installed with ClimaTune and has the
fair CRPS and a PIT with ties handled. Every score is weighted by
:meth:`~climatune.data.view.TaskView.weights` (cos latitude inside the region, 0 outside),
like the deterministic metrics. The spread-skill ratio is

    sqrt((M + 1) / M * mean_w(var_members)) / RMSE(ensemble mean),

with the unbiased member variance, as WeatherBench 2 defines it: 1 for a calibrated
ensemble of M members; below 1 for an over-confident one.

A Gaussian head (``model.head_distribution: gaussian``) is scored from its predictive
distribution (:func:`gaussian_rows`): one network's CRPS and spread-skill in closed form
(:func:`gaussian_crps`; spread-skill sqrt(mean_w σ²) / RMSE(μ)), everything else (an
ensemble of Gaussian heads, the PIT, the rank histogram) through the ensemble path above
with :data:`~climatune.inference.gaussian.QUANTILE_MEMBERS` equally spaced quantile draws
per member. Each of these rows names its ``estimator``.

Baselines: the climatological ensemble (every training year's value at the target's
calendar month, one member a year, as WeatherBench 2 builds it) and deterministic
predictions dressed with their own training-residual spread (:func:`dress`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import xarray as xr
from scipy.stats import norm
from scores.continuous import mse
from scores.probability import Pit, crps_for_ensemble, rank_histogram

from climatune.data.view import TaskView
from climatune.evaluation.baselines import Baseline
from climatune.evaluation.bootstrap import paired_interval
from climatune.evaluation.climatology import is_sub_annual
from climatune.inference.gaussian import QUANTILE_MEMBERS, quantile_members

__all__ = [
    "DRESSED_MEMBERS",
    "climatological_ensemble",
    "crps_comparison_rows",
    "crps_per_time",
    "dress",
    "dress_members",
    "ensemble_rows",
    "gaussian_crps",
    "gaussian_rows",
    "kernel_spread",
    "probabilistic_rows",
    "residual_spread",
    "spread_skill",
]

DRESSED_MEMBERS = 20  #: members of a dressed deterministic prediction


def _weights_for(obs: xr.DataArray, weights: xr.DataArray | None) -> xr.DataArray | None:
    """Cell weights broadcast to ``obs``, 0 where it is missing (``scores`` wants no NaN)."""
    if weights is None:
        return xr.ones_like(obs).where(obs.notnull(), 0.0)
    return (weights.fillna(0.0) * xr.ones_like(obs)).where(obs.notnull(), 0.0)


def spread_skill(fcst: xr.DataArray, obs: xr.DataArray, weights: xr.DataArray | None) -> float:
    """The spread-skill ratio of an ensemble along ``member`` (module docstring)."""
    m = fcst.sizes["member"]
    w = _weights_for(obs, weights)
    skill = float(mse(fcst.mean("member"), obs, weights=w))
    variance = fcst.var("member", ddof=1).where(obs.notnull())
    spread = float(variance.weighted(w).mean())
    if skill <= 0:
        return math.nan
    return math.sqrt((m + 1) / m * spread / skill)


def ensemble_rows(
    fcst: xr.Dataset,
    truth: xr.Dataset,
    weights: xr.DataArray | None,
    *,
    model: str,
    task: str,
    split: str,
) -> list[dict[str, Any]]:
    """The probabilistic rows of one ensemble prediction (a ``member`` dimension).

    Per target variable: ``crps`` (fair), ``spread_skill``, ``pit_alpha`` (the alpha
    score of the PIT distribution: the mean distance of its CDF from the uniform's, 0 when
    calibrated; an ensemble's PIT takes only the values k / M, so even a calibrated
    ensemble of M members scores about 1 / (4 M)) and ``rank_hist_K`` (the relative
    frequency of rank K, K = 1 .. M + 1: 1 / (M + 1) each when calibrated; the ensemble's
    PIT histogram). Cases where the truth or a member is NaN are left out.
    """
    rows: list[dict[str, Any]] = []
    base = {"model": model, "task": task, "split": split}
    weights = None if weights is None else weights.load()
    for name in truth.data_vars:
        f = fcst[name].load()  # in memory: the scores run many small steps
        valid = truth[name].notnull() & f.notnull().all("member")
        f, o = f.where(valid), truth[name].load().where(valid)
        w = _weights_for(o, weights)
        values = {
            "crps": float(crps_for_ensemble(f, o, "member", method="fair", weights=w)),
            "spread_skill": spread_skill(f, o, weights),
        }
        pit = Pit(f, o, ensemble_member_dim="member", weights=w)
        values["pit_alpha"] = float(pit.alpha_score())
        ranks = rank_histogram(f, o, "member", weights=w)
        for k, value in enumerate(np.asarray(ranks.values).ravel(), start=1):
            values[f"rank_hist_{k}"] = float(value)
        rows += [
            {**base, "variable": str(name), "metric": metric, "value": value}
            for metric, value in values.items()
        ]
    return rows


def gaussian_crps(
    mean: xr.DataArray, std: xr.DataArray, obs: xr.DataArray, weights: xr.DataArray | None
) -> float:
    """The weighted mean closed-form CRPS of N(mean, std²) for ``obs`` over its valid cells.

    CRPS = σ [z (2 Φ(z) − 1) + 2 φ(z) − 1/√π], z = (y − μ) / σ (Gneiting and Raftery
    2007), weighted like every score here.
    """
    z = (obs - mean) / std
    cdf, pdf = z.copy(data=norm.cdf(z.values)), z.copy(data=norm.pdf(z.values))
    crps = std * (z * (2 * cdf - 1) + 2 * pdf - 1 / math.sqrt(math.pi))
    valid = crps.notnull()
    w = _weights_for(obs.where(valid), weights)
    return float(crps.fillna(0.0).weighted(w).mean())


def gaussian_rows(
    mean: xr.Dataset,
    std: xr.Dataset,
    truth: xr.Dataset,
    weights: xr.DataArray | None,
    *,
    model: str,
    task: str,
    split: str,
) -> list[dict[str, Any]]:
    """The probabilistic rows of Gaussian heads' predictions (``member`` dimension).

    The rows of :func:`ensemble_rows` on :func:`~climatune.inference.gaussian.quantile_members`
    of each member; for one network, ``crps`` and ``spread_skill`` are replaced by their
    closed forms. Every row names its ``estimator``.
    """
    rows = ensemble_rows(
        quantile_members(mean, std), truth, weights, model=model, task=task, split=split
    )
    n = mean.sizes["member"]
    draws = f"fair, {QUANTILE_MEMBERS} equally spaced quantile draws per member ({n})"
    for row in rows:
        row["estimator"] = draws
    if n > 1:
        return rows
    for name in truth.data_vars:
        mu, sd = mean[name].isel(member=0, drop=True), std[name].isel(member=0, drop=True)
        obs = truth[name].where(mu.notnull() & sd.notnull())
        w = _weights_for(obs, weights)
        error = float(mse(mu.where(obs.notnull()), obs, weights=w))
        variance = float((sd**2).where(obs.notnull()).weighted(w).mean())
        exact = {
            "crps": gaussian_crps(mu, sd, obs, weights),
            "spread_skill": math.sqrt(variance / error) if error > 0 else math.nan,
        }
        for row in rows:
            if row["variable"] == str(name) and row["metric"] in exact:
                row["value"] = exact[row["metric"]]
                row["estimator"] = "closed-form Gaussian"
    return rows


def climatological_ensemble(view: TaskView, split: str) -> xr.Dataset:
    """For each target time of ``split``, the training years' values as members.

    Sub-annual data: the values at the target's calendar month, one per training year
    (the most recent years when months have unequal counts); annual data: every training
    year. The ``member`` dimension numbers the years.
    """
    train = view.target_data().isel(time=view.steps("train")).load()
    times = view.target_times(split)
    if not is_sub_annual(train.time):
        members = train.rename(time="member").drop_vars("member", errors="ignore")
        out = members.expand_dims(time=times.size).assign_coords(time=times.values)
        return out.transpose("member", "time", ...)
    months = train.time.dt.month.values
    count = min(int((months == m).sum()) for m in np.unique(times.dt.month.values))
    by_month = {
        int(m): train.isel(time=np.flatnonzero(months == m)[-count:])
        .rename(time="member")
        .drop_vars("member", errors="ignore")
        for m in np.unique(months)
    }
    steps = [by_month[int(m)] for m in times.dt.month.values]
    out = xr.concat(steps, dim="time").assign_coords(time=times.values)
    return out.transpose("member", "time", ...)


def residual_spread(pred: xr.Dataset, truth: xr.Dataset) -> xr.Dataset:
    """Per cell, the root-mean-square of ``pred - truth`` over time (the training years)."""
    return np.sqrt(((pred - truth) ** 2).mean("time"))


def dress(pred: xr.Dataset, spread: xr.Dataset, members: int = DRESSED_MEMBERS) -> xr.Dataset:
    """A deterministic prediction as an ensemble: Gaussian quantile members around it.

    Member k is ``pred + spread * Phi^-1((k + 0.5) / members)``, the evenly spaced
    quantiles of N(pred, spread²): no random draw, so the scores repeat exactly.
    """
    z = norm.ppf((np.arange(members) + 0.5) / members)
    offsets = xr.DataArray(z, dims="member")
    return (pred + spread * offsets).transpose("member", ...)


def kernel_spread(train: xr.Dataset, train_truth: xr.Dataset) -> xr.Dataset:
    """Per cell, the spread an ensemble lacks on its training years: the root of the mean
    squared error of its mean less its members' mean variance (``ddof=1``), floored at 0."""
    error = ((train.mean("member") - train_truth) ** 2).mean("time")
    own = train.var("member", ddof=1).mean("time")
    return np.sqrt((error - own).clip(min=0.0))


def dress_members(
    members: xr.Dataset, spread: xr.Dataset, total: int = DRESSED_MEMBERS
) -> xr.Dataset:
    """An ensemble dressed with Gaussian kernels (kernel dressing, Roulston and Smith 2003):
    each of its M members becomes ``total // M`` (at least 2) evenly spaced quantiles of
    N(member, spread²) (:func:`dress`), so the members keep their own spread and gain the
    ``spread`` they lack (:func:`kernel_spread`)."""
    count = max(total // members.sizes["member"], 2)
    parts = [dress(members.isel(member=k, drop=True), spread, count) for k in members.member.values]
    out = xr.concat(parts, dim="member")
    return out.assign_coords(member=np.arange(out.sizes["member"]))


def crps_per_time(
    fcst: xr.DataArray, obs: xr.DataArray, weights: xr.DataArray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per time, the weighted sum of the fair CRPS over the cells where the truth and every
    member are valid, and the sum of their weights: the terms of the paired bootstrap."""
    valid = obs.notnull() & fcst.notnull().all("member")
    crps = crps_for_ensemble(
        fcst.where(valid), obs.where(valid), "member", method="fair", preserve_dims="all"
    )
    w = xr.ones_like(obs) if weights is None else weights.broadcast_like(obs)
    w = w.where(valid, 0.0)
    cells = [d for d in obs.dims if d != "time"]
    total = (crps.fillna(0.0) * w).sum(cells) if cells else crps.fillna(0.0) * w
    count = w.sum(cells) if cells else w
    return np.asarray(total.values, float), np.asarray(count.values, float)


def crps_comparison_rows(
    ensembles: dict[str, xr.Dataset],
    truth: xr.Dataset,
    weights: xr.DataArray | None,
    networks: list[str],
    *,
    task: str,
    split: str,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One ``crps_diff`` row per network ensemble (``networks``, raw or dressed) and
    variable: its CRPS minus that of the best probabilistic baseline among the other
    ``ensembles`` (the lowest CRPS), with the paired block-bootstrap interval over test
    times (:func:`~climatune.evaluation.bootstrap.paired_interval`)."""
    rows: list[dict[str, Any]] = []
    weights = None if weights is None else weights.load()
    for name in truth.data_vars:
        obs = truth[name].load()
        terms = {m: crps_per_time(e[name].load(), obs, weights) for m, e in ensembles.items()}
        mean = {m: t[0].sum() / t[1].sum() for m, t in terms.items() if t[1].sum() > 0}
        references = [m for m in mean if m not in networks]
        if not references:
            continue
        best = min(references, key=mean.__getitem__)
        for model in networks:
            if model not in mean:
                continue
            iv = paired_interval(terms[model], terms[best], seed=seed, root=False)
            rows.append(
                {
                    "model": model,
                    "task": task,
                    "variable": str(name),
                    "metric": "crps_diff",
                    "value": iv.diff,
                    "split": split,
                    "reference": best,
                }
                | iv.row_keys()
            )
    return rows


def probabilistic_rows(
    view: TaskView,
    ensembles: dict[str, xr.Dataset],
    baselines: dict[str, Baseline],
    preds: dict[str, xr.Dataset],
    truth: xr.Dataset,
    weights: xr.DataArray | None,
    *,
    split: str,
    gaussians: dict[str, tuple[xr.Dataset, xr.Dataset]] | None = None,
    trained: dict[str, xr.Dataset] | None = None,
) -> list[dict[str, Any]]:
    """The :func:`ensemble_rows` of each network ensemble and of the probabilistic baselines.

    ``ensembles`` are the networks' member predictions; ``gaussians`` the mean and
    standard deviation of networks with a Gaussian head (:func:`gaussian_rows`);
    ``baselines`` the fitted
    deterministic baselines whose predictions of ``split`` are in ``preds``. Each is
    dressed with its own training residuals (``NAME_dressed``); the climatological
    ensemble is ``climatological_ensemble``. ``truth`` is masked to the cells scored.
    ``trained`` holds, per network ensemble, its members' predictions of the training
    years: the ensemble is then also scored dressed with the spread it lacks there
    (:func:`dress_members`, ``NAME_dressed``), as the baselines are with theirs. Each
    network ensemble, raw and dressed, then gets its ``crps_diff`` row against the best
    probabilistic baseline (:func:`crps_comparison_rows`).
    """
    kw: dict[str, Any] = {"task": view.kind, "split": split}
    rows: list[dict[str, Any]] = []
    train_truth = view.truth("train").load()
    scored: dict[str, xr.Dataset] = {}  # every ensemble scored, for the CRPS comparisons
    for name, members in ensembles.items():
        scored[name] = members
        if trained and name in trained:
            spread = kernel_spread(trained[name], train_truth)
            scored[f"{name}_dressed"] = dress_members(members, spread)
    networks = list(scored)
    for name, (mean, std) in (gaussians or {}).items():
        rows += gaussian_rows(mean, std, truth, weights, model=name, **kw)
    scored["climatological_ensemble"] = climatological_ensemble(view, split)
    for name, baseline in baselines.items():
        spread = residual_spread(baseline.predict(view, "train"), train_truth)
        scored[f"{name}_dressed"] = dress(preds[name], spread)
    for name, members in scored.items():
        rows += ensemble_rows(members, truth, weights, model=name, **kw)
    rows += crps_comparison_rows(scored, truth, weights, networks, **kw)
    return rows
