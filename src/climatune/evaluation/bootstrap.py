"""Paired block-bootstrap intervals of an RMSE difference over test times.

Every "A beats B" of ClimaTune rests on :func:`paired_interval`: the test times are
resampled in circular blocks of consecutive steps (Politis and Romano, 1992), the same
resample for both models, so that the interval keeps the autocorrelation of the errors in
time and their correlation between the two models. The block length follows the lag-1
autocorrelation of the paired loss differences (:func:`block_length`). The interval is
the difference ± a Student-t quantile (on the number of blocks less one) times the
bootstrap standard error, which is scaled by ``sqrt(n / (n − b))`` for the variance a
block bootstrap misses on a short series. In a simulation (AR(1) errors, 30 to 100 test
times, ρ up to 0.7, 400 repetitions) it covered the true difference 93-95 % of the time,
where the plain percentile interval with half these blocks covered 86-91 %; ``tests/evaluation/test_bootstrap.py``
checks its coverage.

This is a short numpy implementation rather than ``scores.processing.block_bootstrap``
(which resamples whole fields for each draw and takes the block length as given) or
``xskillscore.resample_iterations`` (single steps, no blocks), whereas the RMSE difference only needs, per test time, the
weighted sums of squared errors (:func:`~climatune.evaluation.metrics.squared_errors`),
so a draw costs a few array lookups and the block length is chosen from the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from scipy import stats

from climatune.evaluation.metrics import squared_errors

__all__ = [
    "Interval",
    "INTERVAL_KEYS",
    "block_length",
    "paired_interval",
    "comparison_rows",
]

#: Fields of a comparison row in ``metrics.json`` / ``metrics.csv`` besides the metric row's.
INTERVAL_KEYS = ("reference", "ci_low", "ci_high", "level", "block_length", "n_times", "seed")


@dataclass(frozen=True)
class Interval:
    """``diff`` = RMSE(model) − RMSE(reference) with its bootstrap interval ``[low, high]``."""

    diff: float
    low: float
    high: float
    level: float
    block: int
    n_times: int
    seed: int

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero."""
        return not self.low <= 0.0 <= self.high

    def row_keys(self) -> dict[str, Any]:
        """The interval's keys of a comparison row: ``ci_low`` .. ``seed``."""
        return {
            "ci_low": self.low,
            "ci_high": self.high,
            "level": self.level,
            "block_length": self.block,
            "n_times": self.n_times,
            "seed": self.seed,
        }


def block_length(diff: np.ndarray) -> int:
    """Circular-bootstrap block length for a series of paired loss differences.

    Twice the Politis-White (2004; corrected by Patton, Politis and White, 2009) optimal
    length for the circular block bootstrap of a mean, evaluated for an AR(1) fit of the
    series: ``b = 2 (6 ρ² / (1 − ρ²)²)^(1/3) n^(1/3)``, with ``ρ`` the lag-1
    autocorrelation clipped to [0, 0.9]. That optimum balances the bias and the variance
    of the variance estimate; an interval suffers more from the bias (blocks too short
    for the autocorrelation), which doubling halves, while the Student-t quantile of
    :func:`paired_interval` pays for the fewer blocks. It is rounded up and kept between
    ``⌊n^(1/3)⌋`` (a floor, as a short series underestimates ρ) and ``n // 2``.

    Examples
    --------
    >>> block_length(np.tile([1.0, -1.0], 15))  # anti-correlated: the floor, ⌊30^(1/3)⌋
    3
    >>> block_length(np.repeat([1.0, -1.0], 15))  # one long swing: ρ = 0.9, capped at n // 2
    15
    """
    n = len(diff)
    d = np.asarray(diff, float) - np.mean(diff)
    denom = float(np.sum(d * d))
    rho = float(np.sum(d[1:] * d[:-1]) / denom) if denom > 0 and n > 2 else 0.0
    rho = min(max(rho, 0.0), 0.9)
    ar1 = 2 * (6 * rho**2 / (1 - rho**2) ** 2) ** (1 / 3) * n ** (1 / 3)
    floor = math.floor(n ** (1 / 3) + 1e-9)
    return int(max(1, min(max(floor, math.ceil(ar1)), n // 2)))


def _resample(n: int, block: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_resamples, n)`` time indices made of circular blocks of ``block`` steps."""
    k = -(-n // block)
    starts = rng.integers(0, n, size=(n_resamples, k, 1))
    return ((starts + np.arange(block)) % n).reshape(n_resamples, k * block)[:, :n]


def paired_interval(
    model: tuple[np.ndarray, np.ndarray],
    reference: tuple[np.ndarray, np.ndarray],
    *,
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    root: bool = True,
) -> Interval:
    """Interval of RMSE(model) − RMSE(reference) by a paired circular block bootstrap
    (``root`` False: of the difference of the weighted means themselves, such as CRPS).

    Parameters
    ----------
    model, reference
        Per test time, the weighted squared errors and their weights
        (:func:`~climatune.evaluation.metrics.squared_errors`) of the two predictions.
        With ``root`` False, any per-time weighted sums (CRPS) and their weights.
    level
        Coverage of the interval.
    n_resamples
        Bootstrap draws; both models see the same draws.
    seed
        Seed of the draws: the same inputs and seed give the same interval.
    """
    (ea, na), (eb, nb) = model, reference
    keep = (na > 0) & (nb > 0)  # times with no valid cell carry nothing
    ea, na, eb, nb = ea[keep], na[keep], eb[keep], nb[keep]
    stat = np.sqrt if root else np.asarray
    diff = float(stat(ea.sum() / na.sum()) - stat(eb.sum() / nb.sum()))
    n = len(ea)
    if n < 2:
        return Interval(diff, math.nan, math.nan, level, 1, n, seed)
    block = block_length(ea / na - eb / nb)
    idx = _resample(n, block, n_resamples, np.random.default_rng(seed))
    draws = stat(ea[idx].sum(1) / na[idx].sum(1)) - stat(eb[idx].sum(1) / nb[idx].sum(1))
    se = float(np.std(draws)) * math.sqrt(n / (n - block))
    half = float(stats.t.ppf((1 + level) / 2, max(n / block - 1, 1))) * se
    return Interval(diff, diff - half, diff + half, level, block, n, seed)


def comparison_rows(
    preds: dict[str, xr.Dataset],
    truth: xr.Dataset,
    weights: xr.DataArray | None,
    networks: list[str],
    *,
    task: str,
    split: str = "test",
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One ``rmse_diff`` row per network, variable and other prediction.

    Rows hold the metric row's keys (``value`` is RMSE(model) − RMSE(reference), negative
    when the model is better) and :data:`INTERVAL_KEYS`.
    """
    rows = []
    for name in truth.data_vars:
        errors = {m: squared_errors(p[name], truth[name], weights) for m, p in preds.items()}
        for model in networks:
            for ref in preds:
                if ref == model:
                    continue
                iv = paired_interval(errors[model], errors[ref], seed=seed)
                rows.append(
                    {
                        "model": model,
                        "task": task,
                        "variable": str(name),
                        "metric": "rmse_diff",
                        "value": iv.diff,
                        "split": split,
                        "reference": ref,
                    }
                    | iv.row_keys()
                )
    return rows
