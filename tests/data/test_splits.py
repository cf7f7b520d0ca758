"""Splits: contiguous blocks, no sample crossing a block, and no step dropped for nothing."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from climatune.data.splits import (
    block_indices,
    default_blocks,
    fold_blocks,
    sample_anchors,
    time_runs,
)
from climatune.errors import ClimatuneError


def test_default_blocks_cover_the_years_in_order():
    blocks = default_blocks(1860, 2099)
    assert blocks["train"][0] == 1860 and blocks["test"][1] == 2099
    assert blocks["train"][1] < blocks["val"][0] <= blocks["val"][1] < blocks["test"][0]


def test_adjacent_blocks_keep_every_step():
    years = np.repeat(np.arange(2000, 2010), 12)  # monthly
    idx = block_indices(years, {"train": (2000, 2004), "val": (2005, 2009)})
    np.testing.assert_array_equal(idx["train"], np.arange(60))
    np.testing.assert_array_equal(idx["val"], np.arange(60, 120))  # no step trimmed


def test_overlapping_blocks_are_refused():
    with pytest.raises(ClimatuneError, match="overlap"):
        block_indices(np.arange(2000, 2010), {"train": (2000, 2005), "val": (2005, 2009)})


def test_history_1_lead_0_samples_every_year_of_every_block():
    years = np.arange(2000, 2050)  # annual
    blocks = {"train": (2000, 2029), "val": (2030, 2039), "test": (2040, 2049)}
    idx = block_indices(years, blocks)
    for name, (y0, y1) in blocks.items():
        anchors = sample_anchors(idx[name], history=1, lead=0)
        assert sorted(years[anchors]) == list(range(y0, y1 + 1)), name


@settings(max_examples=60, deadline=None)
@given(
    n_years=st.integers(8, 40),
    history=st.integers(1, 4),
    lead=st.integers(0, 3),
    steps_per_year=st.sampled_from([1, 12]),
    cuts=st.tuples(st.floats(0.2, 0.5), st.floats(0.55, 0.85)),
)
def test_no_sample_reads_outside_its_block(n_years, history, lead, steps_per_year, cuts):
    years = np.repeat(np.arange(n_years), steps_per_year)
    a, b = int(cuts[0] * n_years), int(cuts[1] * n_years)
    blocks = {"train": (0, a - 1), "val": (a, b - 1), "test": (b, n_years - 1)}
    idx = block_indices(years, blocks)
    read = {}
    for name, steps in idx.items():
        assert steps.size == (blocks[name][1] - blocks[name][0] + 1) * steps_per_year
        anchors = sample_anchors(steps, history, lead)
        assert anchors.size == max(0, steps.size - history + 1 - lead)
        read[name] = {t for s in anchors for t in range(s - history + 1, s + lead + 1)}
        assert read[name] <= set(steps.tolist())
    assert not read["train"] & read["val"] and not read["train"] & read["test"]
    assert not read["val"] & read["test"]


def test_fold_blocks_are_contiguous_and_cover():
    folds = fold_blocks(1900, 1999, 4)
    assert folds[0][0] == 1900 and folds[-1][1] == 1999
    assert all(b[0] == a[1] + 1 for a, b in zip(folds, folds[1:]))
    with pytest.raises(ClimatuneError):
        fold_blocks(1900, 1902, 5)


def _axis(start, periods, freq, calendar, drop=()):
    time = xr.date_range(start, periods=periods, freq=freq, calendar=calendar, use_cftime=True)
    return xr.DataArray(time.delete(list(drop)) if drop else time, dims="time")


@pytest.mark.parametrize(
    ("freq", "calendar"),
    [
        ("YS", "360_day"),
        ("MS", "noleap"),
        ("MS", "proleptic_gregorian"),
        ("D", "360_day"),
        ("D", "standard"),
        ("6h", "noleap"),
    ],
)
def test_time_runs_cut_the_axis_at_a_missing_step_in_any_calendar(freq, calendar):
    assert time_runs(_axis("2000-01-01", 40, freq, calendar)).tolist() == [0] * 40
    runs = time_runs(_axis("2000-01-01", 40, freq, calendar, drop=(10, 11, 25)))
    assert runs.tolist() == [0] * 10 + [1] * 13 + [2] * 14


def test_mid_month_stamps_of_uneven_months_are_one_run():
    # CMIP monthly means are stamped mid-month: 31, 28, 31, 30 ... days apart
    time = xr.date_range("2000-01-01", periods=36, freq="MS", calendar="standard", use_cftime=True)
    mid = xr.DataArray([t + (t.replace(day=28) - t) / 2 for t in time], dims="time")
    assert time_runs(mid).tolist() == [0] * 36


def test_no_anchor_straddles_a_hole():
    time = _axis("2000-01-01", 24, "MS", "noleap", drop=(12,))  # January 2001 is missing
    runs = time_runs(time)
    anchors = sample_anchors(np.arange(time.size), history=2, lead=1, runs=runs)
    assert anchors.tolist() == [*range(1, 11), *range(13, 22)]
    months = time.dt.year.values * 12 + time.dt.month.values
    for anchor in anchors:
        assert np.all(np.diff(months[anchor - 1 : anchor + 2]) == 1)
