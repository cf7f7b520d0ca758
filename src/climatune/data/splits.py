"""Time splits: contiguous blocks of years, with exactly the gap that keeps targets from leaking.

A sample with anchor step ``t`` reads inputs ``t-history+1 .. t`` and its target at
``t+lead``; it belongs to a block only if all of those steps lie inside the block's years.
No sample therefore reads a step of another block, and that is the whole gap: the first
``history - 1`` and last ``lead`` steps of each block anchor no sample, and no step is
dropped beyond that (with ``history`` 1 and ``lead`` 0, every step of every block is used).
A sample never spans a hole in the time axis either: :func:`time_runs` cuts the axis where
a step is missing.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from climatune.data.settings import SplitConfig
from climatune.errors import ClimatuneError

__all__ = [
    "default_blocks",
    "block_indices",
    "sample_anchors",
    "fold_blocks",
    "time_runs",
    "split_blocks",
    "split_anchors",
]

Block = tuple[int, int]


def default_blocks(first: int, last: int) -> dict[str, Block]:
    """Train on the first ~70 % of the years, validate on ~15 %, test on the last ~15 %."""
    n = last - first + 1
    if n < 6:
        raise ClimatuneError(f"only {n} years ({first}-{last}); a split needs at least 6 years")
    n_test = max(1, round(0.15 * n))
    n_val = max(1, round(0.15 * n))
    test = (last - n_test + 1, last)
    val = (test[0] - n_val, test[0] - 1)
    return {"train": (first, val[0] - 1), "val": val, "test": test}


def block_indices(years: np.ndarray, blocks: Mapping[str, Block | None]) -> dict[str, np.ndarray]:
    """Time indices of every step in each block's years; blocks must not overlap.

    Parameters
    ----------
    years
        Calendar year of every time step (sorted).
    blocks
        Block name to inclusive ``(first_year, last_year)``; ``None`` blocks are skipped.
    """
    years = np.asarray(years)
    spans = sorted(((b[0], b[1], name) for name, b in blocks.items() if b is not None))
    out: dict[str, np.ndarray] = {}
    for i, (y0, y1, name) in enumerate(spans):
        if i and y0 <= spans[i - 1][1]:
            raise ClimatuneError(
                f"split blocks {spans[i - 1][2]} ({spans[i - 1][0]}-{spans[i - 1][1]}) and {name} "
                f"({y0}-{y1}) overlap; make them disjoint"
            )
        out[name] = np.flatnonzero((years >= y0) & (years <= y1))
    return out


def sample_anchors(
    indices: np.ndarray, history: int, lead: int, runs: np.ndarray | None = None
) -> np.ndarray:
    """Anchors whose inputs and target all lie inside the contiguous ``indices`` block.

    A block of ``n`` steps gives ``n - history + 1 - lead`` samples (none if that is < 1).
    With ``runs`` (:func:`time_runs` of the whole axis), a sample must also lie inside one
    run of regular steps, so that none spans a hole in the time axis.
    """
    if indices.size == 0:
        return indices
    first, last = int(indices[0]), int(indices[-1])
    anchors = np.arange(first + history - 1, last - lead + 1)
    if indices.size != last - first + 1:  # a block's steps in several sources: no step between
        keep = np.isin(anchors - history + 1, indices) & np.isin(anchors + lead, indices)
        anchors = anchors[keep]
    if runs is None:
        return anchors
    return anchors[runs[anchors - history + 1] == runs[anchors + lead]]


def _ordinals(time: xr.DataArray) -> np.ndarray:
    """The coarsest count of the steps of ``time`` that is strictly increasing.

    Years for annual data, months (whatever their length in the calendar) for monthly or
    seasonal data, fractional days otherwise, so that a regular step is a constant
    difference in any cftime calendar.
    """
    years = time.dt.year.values.astype(np.int64)
    if np.all(np.diff(years) > 0):
        return years
    months = years * 12 + time.dt.month.values - 1
    if np.all(np.diff(months) > 0):
        return months
    values = time.values
    if values.dtype.kind == "M":
        return values.astype("datetime64[s]").astype(np.int64) / 86400.0
    return np.array([t.toordinal(fractional=True) for t in values])


def time_runs(time: xr.DataArray) -> np.ndarray:
    """Run number of every step of a sorted time axis: a missing step starts a new run.

    The axis's regular step is the most common difference between its times (one year,
    one month, one day, six hours, ...); wherever two neighbours are further apart, or
    closer, than that step, the axis has a hole or an irregular stamp and a new run begins.

    Examples
    --------
    >>> time = xr.date_range("2000-01", periods=6, freq="MS", calendar="noleap", use_cftime=True)
    >>> time_runs(xr.DataArray(time.delete(2), dims="time")).tolist()  # March is missing
    [0, 0, 1, 1, 1]
    """
    if time.size < 2:
        return np.zeros(time.size, dtype=np.int64)
    if "source" in time.coords:  # a multi-source axis: each source's steps run apart
        labels = np.asarray(time["source"].values)
        cuts = np.flatnonzero(labels[1:] != labels[:-1]) + 1
        if cuts.size:
            out, base = [], 0
            for part in np.split(np.arange(time.size), cuts):
                runs = time_runs(time.isel(time=part).drop_vars("source")) + base
                out.append(runs)
                base = int(runs[-1]) + 1
            return np.concatenate(out)
    diffs = np.diff(_ordinals(time)).astype(float)
    values, counts = np.unique(diffs.round(6), return_counts=True)
    step = values[np.argmax(counts)]
    breaks = ~np.isclose(diffs, step, rtol=1e-6, atol=1e-6)
    return np.concatenate([[0], np.cumsum(breaks)])


def fold_blocks(first: int, last: int, folds: int) -> list[Block]:
    """Split ``first..last`` into ``folds`` contiguous, near-equal blocks of years."""
    n = last - first + 1
    if folds < 2 or folds > n:
        raise ClimatuneError(f"--folds {folds} must be between 2 and the {n} non-test years")
    edges = np.linspace(first, last + 1, folds + 1).round().astype(int)
    return [(int(edges[i]), int(edges[i + 1] - 1)) for i in range(folds)]


def split_blocks(split: SplitConfig | None, first: int, last: int) -> dict[str, Block]:
    """The year blocks of ``split`` (or the default split), checked against the data's years.

    A training set made of several blocks (as in cross-validation folds) gets keys
    ``train#0``, ``train#1``, ...
    """
    raw = split.model_dump() if split else default_blocks(first, last)
    blocks: dict[str, Block] = {}
    for name, value in raw.items():
        if value is None:
            continue
        many = isinstance(value[0], (list, tuple))
        for i, block in enumerate(value if many else [value]):
            key = f"{name}#{i}" if many else name
            if block[1] < first or block[0] > last:
                raise ClimatuneError(
                    f"{name} block {block[0]}-{block[1]} lies outside the data's years {first}-{last}"
                )
            blocks[key] = (int(block[0]), int(block[1]))
    return blocks


def split_anchors(
    time: xr.DataArray,
    split: SplitConfig | None,
    history: int,
    lead: int,
    *,
    train_fraction: float = 1.0,
) -> tuple[dict[str, np.ndarray], dict[str, Block]]:
    """The anchors of the train, val and test samples on ``time``, and the blocks they lie in.

    Each split's samples keep every step they read inside one of its blocks and one run of
    regular steps (:func:`time_runs`). ``train_fraction`` < 1 keeps the latest share of
    the training samples (of each source's, on a multi-source axis).
    """
    years = time.dt.year.values
    runs = time_runs(time)
    blocks = split_blocks(split, int(years.min()), int(years.max()))
    steps = block_indices(years, blocks)
    anchors: dict[str, np.ndarray] = {}
    for name in ("train", "val", "test"):
        keys = [k for k in steps if k.split("#")[0] == name]
        if not keys:
            continue
        anchors[name] = np.concatenate(
            [sample_anchors(steps[k], history, lead, runs) for k in keys]
        )
        if anchors[name].size == 0:
            shown = ", ".join(
                f"{b[0]}-{b[1]}" for k, b in blocks.items() if k.split("#")[0] == name
            )
            raise ClimatuneError(
                f"the {name} block {shown} leaves no samples (each needs {history + lead} steps "
                f"inside it: history={history}, lead={lead}); widen it in data.split"
            )
    if train_fraction < 1.0:
        anchors["train"] = _latest_share(anchors["train"], train_fraction, time)
    return anchors, blocks


def _latest_share(train: np.ndarray, fraction: float, time: xr.DataArray) -> np.ndarray:
    """The latest ``fraction`` of the training anchors; of each source's on a multi-source
    axis (its ``source`` coordinate), whose sources follow each other along ``time``: the
    latest share of them all would keep the last sources and drop the first ones."""
    labels = np.asarray(time["source"].values)[train] if "source" in time.coords else None
    groups = [train] if labels is None else [train[labels == n] for n in dict.fromkeys(labels)]
    kept = [g[-max(1, int(np.ceil(fraction * g.size))) :] for g in groups if g.size]
    return np.concatenate(kept) if kept else train
