"""Splits: contiguous blocks, a gap between them, and no sample crossing a block."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from climatune.data.splits import block_indices, default_blocks, fold_blocks, sample_anchors
from climatune.errors import ClimatuneError


def test_default_blocks_cover_the_years_in_order():
    blocks = default_blocks(1860, 2099)
    assert blocks["train"][0] == 1860 and blocks["test"][1] == 2099
    assert blocks["train"][1] < blocks["val"][0] <= blocks["val"][1] < blocks["test"][0]


def test_gap_is_trimmed_from_the_later_block():
    years = np.repeat(np.arange(2000, 2010), 12)  # monthly
    idx = block_indices(years, {"train": (2000, 2004), "val": (2005, 2009)}, span=3)
    assert idx["train"][-1] == 59
    assert idx["val"][0] == 63  # 60, 61, 62 form the gap


def test_overlapping_blocks_are_refused():
    with pytest.raises(ClimatuneError, match="overlap"):
        block_indices(np.arange(2000, 2010), {"train": (2000, 2005), "val": (2005, 2009)}, span=1)


@settings(max_examples=60, deadline=None)
@given(
    n_years=st.integers(8, 40),
    history=st.integers(1, 4),
    lead=st.integers(0, 3),
    steps_per_year=st.sampled_from([1, 12]),
    cut=st.floats(0.3, 0.8),
)
def test_no_sample_reads_outside_its_block(n_years, history, lead, steps_per_year, cut):
    years = np.repeat(np.arange(n_years), steps_per_year)
    split = int(cut * n_years)
    blocks = {"train": (0, split - 1), "val": (split, n_years - 1)}
    idx = block_indices(years, blocks, span=history + lead)
    owner = {}
    for name, steps in idx.items():
        for s in steps:
            owner[int(s)] = name
        for anchor in sample_anchors(steps, history, lead):
            touched = range(anchor - history + 1, anchor + lead + 1)
            assert all(owner.get(t, name) == name and t in set(steps.tolist()) for t in touched)
    if idx["train"].size and idx["val"].size:
        assert idx["val"][0] - idx["train"][-1] > history + lead


def test_fold_blocks_are_contiguous_and_cover():
    folds = fold_blocks(1900, 1999, 4)
    assert folds[0][0] == 1900 and folds[-1][1] == 1999
    assert all(b[0] == a[1] + 1 for a, b in zip(folds, folds[1:]))
    with pytest.raises(ClimatuneError):
        fold_blocks(1900, 1902, 5)
