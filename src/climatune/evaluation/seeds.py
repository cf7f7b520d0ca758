"""Scores over seeds: the members of deep ensembles scored one by one.

The members of a deep ensemble differ only by their seed (member k is trained with
``seed + k``, :func:`~climatune.training.workflow.run_ensemble`), so scoring members
0 .. K-1 separately gives K seeds of one training recipe without training anything again.
:func:`seed_rows` gives, per network, variable and metric, the mean over the K seeds,
their sample standard deviation and the seeds' own values; and per network and other
prediction the RMSE difference over seeds, with the interval of the difference of the
RMSEs pooled over seeds (a paired block bootstrap of the test times, the K seeds' errors at
one time kept together, as ``climatune curve --seeds`` does).

Examples
--------
>>> summary([0.30, 0.34, 0.32])
{'value': 0.32, 'std': 0.02, 'values': [0.3, 0.34, 0.32], 'n_seeds': 3}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from climatune.data.view import TaskView
from climatune.errors import ClimatuneError
from climatune.evaluation.bootstrap import paired_interval
from climatune.evaluation.climatology import climatology_at, view_climatology
from climatune.evaluation.metrics import score, squared_errors
from climatune.inference import LoadedModel, predict_view

__all__ = ["MAX_SEEDS", "SEEDS_FILE", "check_seeds", "member_predictions", "seed_rows", "summary"]

#: The most seeds ``evaluate --seeds`` scores (as many as an ensemble may hold members).
MAX_SEEDS = 64
#: Where ``evaluate --seeds`` and the demo write the rows of :func:`seed_rows`.
SEEDS_FILE = "seeds.json"


def check_seeds(seeds: Any, models: dict[str, LoadedModel]) -> int:
    """``seeds`` if it is a count from 1 to :data:`MAX_SEEDS` and every network in
    ``models`` holds at least that many members; else a one-line error."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
        raise ClimatuneError(f"--seeds must be an integer from 1 to {MAX_SEEDS}; got {seeds!r}")
    for name, model in models.items():
        if model.members < seeds:
            raise ClimatuneError(
                f"--seeds {seeds} scores the first {seeds} members of each ensemble one by one, "
                f"and the {name} model ({model.model_dir}) has {model.members} "
                f"member{'s' if model.members > 1 else ''}; train it with "
                f"ensemble.members={seeds} or more, or lower --seeds"
            )
    return seeds


def summary(values: Sequence[float]) -> dict[str, Any]:
    """The mean of ``values``, their sample standard deviation (NaN for one value), the
    values themselves and their count."""
    arr = np.asarray(values, dtype=float)
    std = float(np.std(arr, ddof=1)) if arr.size > 1 else float("nan")
    return {
        "value": round(float(arr.mean()), 12),
        "std": round(std, 12),
        "values": [float(v) for v in arr],
        "n_seeds": int(arr.size),
    }


def member_predictions(
    models: dict[str, LoadedModel], view: TaskView, seeds: int, split: str = "test"
) -> dict[str, list[xr.Dataset]]:
    """Per network, the predictions of its first ``seeds`` members on ``split``."""
    out: dict[str, list[xr.Dataset]] = {}
    for name, model in models.items():
        if model.members > 1:
            pred = predict_view(model, view, split, members=True)
            out[name] = [pred.isel(member=k, drop=True) for k in range(seeds)]
        else:
            out[name] = [predict_view(model, view, split)]
    return out


def seed_rows(
    view: TaskView,
    members: dict[str, list[xr.Dataset]],
    others: dict[str, xr.Dataset],
    *,
    split: str = "test",
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Rows of the networks' scores over seeds, and of their differences with the rest.

    Parameters
    ----------
    view
        The task the predictions are of.
    members
        Per network, one prediction per seed (:func:`member_predictions`); every network
        has the same count K.
    others
        Deterministic predictions (baselines) to compare with, the same for every seed.
    split, seed
        The split scored, and the seed of the bootstrap draws.

    Returns
    -------
    list of dict
        Per network, variable and metric: ``{model, task, variable, metric, split}`` and
        :func:`summary`'s keys. Per network, variable and other prediction (the other
        networks, then ``others``): ``metric: rmse_diff``, ``reference``, the summary of
        the seeds' RMSE differences, and ``pooled`` (RMSE(model) − RMSE(reference) over all
        seeds' errors) with its 95 % interval ``ci_low`` .. ``ci_high``, ``block_length``,
        ``n_times`` and ``level``.
    """
    counts = {len(preds) for preds in members.values()}
    if len(counts) != 1:
        raise ValueError(f"every network needs the same number of seeds, got {counts}")
    (k,) = counts
    truth = view.truth(split).load()
    valid = truth.notnull()
    for pred in [*(p for preds in members.values() for p in preds), *others.values()]:
        valid = valid & pred.notnull()
    truth = truth.where(valid)
    clim = climatology_at(view_climatology(view), view.target_times(split)).load()
    weights = None if view.is_scalar else view.weights()
    base = {"task": view.kind, "split": split}
    rows: list[dict[str, Any]] = []
    for name, preds in members.items():
        per_seed = [score(p, truth, clim, weights, model=name, task=view.kind) for p in preds]
        for i, row in enumerate(per_seed[0]):
            values = [float(s[i]["value"]) for s in per_seed]
            rows.append(
                {"model": name, "variable": row["variable"], "metric": row["metric"], **base}
                | summary(values)
            )
    for var in truth.data_vars:
        errors = {
            name: [squared_errors(p[var], truth[var], weights) for p in preds]
            for name, preds in members.items()
        }
        for name, pred in others.items():
            errors[name] = [squared_errors(pred[var], truth[var], weights)] * k
        for name in members:
            for ref in errors:
                if ref != name:
                    rows.append(_diff_row(name, ref, str(var), errors, base, seed))
    return rows


def _rmse(terms: tuple[np.ndarray, np.ndarray]) -> float:
    return float(np.sqrt(terms[0].sum() / terms[1].sum()))


def _diff_row(
    model: str,
    ref: str,
    var: str,
    errors: dict[str, list[tuple[np.ndarray, np.ndarray]]],
    base: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """The ``rmse_diff`` row of ``model`` against ``ref`` over seeds (:func:`seed_rows`)."""
    mine, theirs = errors[model], errors[ref]
    diffs = [_rmse(a) - _rmse(b) for a, b in zip(mine, theirs, strict=True)]

    def pool(terms: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        return np.sum([t[0] for t in terms], 0), np.sum([t[1] for t in terms], 0)

    iv = paired_interval(pool(mine), pool(theirs), seed=seed)
    return (
        {"model": model, "variable": var, "metric": "rmse_diff", **base, "reference": ref}
        | summary(diffs)
        | {
            "pooled": iv.diff,
            "ci_low": iv.low,
            "ci_high": iv.high,
            "level": iv.level,
            "block_length": iv.block,
            "n_times": iv.n_times,
        }
    )
