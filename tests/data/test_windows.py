"""Random windows and masks: inside the grid, wrapping at the seam only, seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from climatune.data.settings import RandomCropConfig
from climatune.data.windows import (
    check_window,
    crops_batch,
    draw_windows,
    keep_masks,
    window_size,
)
from climatune.errors import ClimatuneError
from climatune.training.objectives import RandomCrop, Window

ANCHORS = np.arange(200)


def _windows(**kw):
    args = dict(seed=3, epoch=0, grid=(6, 10), size=(3, 4), periodic_lon=True)
    return draw_windows(ANCHORS, **{**args, **kw})


def test_windows_stay_within_the_latitudes_and_wrap_across_the_seam():
    rows, cols = _windows()
    assert rows.shape == (200, 3) and cols.shape == (200, 4)
    # contiguous rows inside the grid: never across a pole
    assert rows.min() >= 0 and rows.max() <= 5
    assert (np.diff(rows, axis=1) == 1).all()
    # columns run west to east, modulo the grid's width
    assert cols.min() >= 0 and cols.max() <= 9
    assert ((cols - cols[:, :1]) % 10 == np.arange(4)).all()
    wrapped = (np.diff(cols, axis=1) < 0).any(axis=1)
    assert wrapped.any() and not wrapped.all()  # some windows cross 0°, most do not
    assert set(cols[wrapped][:, -1]) <= {0, 1, 2}
    # every start is drawn: all rows 0..3 and all columns 0..9
    assert set(rows[:, 0]) == {0, 1, 2, 3} and set(cols[:, 0]) == set(range(10))


def test_windows_of_a_regional_grid_do_not_wrap():
    rows, cols = _windows(periodic_lon=False)
    assert (np.diff(cols, axis=1) == 1).all()
    assert set(cols[:, 0]) == set(range(7))  # starts 0..10-4


def test_the_same_seed_and_epoch_give_the_same_windows():
    first, again = _windows(), _windows()
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    # a sample's window does not depend on the batch it falls in
    rows, cols = draw_windows(
        ANCHORS[[7, 3]], seed=3, epoch=0, grid=(6, 10), size=(3, 4), periodic_lon=True
    )
    assert np.array_equal(rows, first[0][[7, 3]]) and np.array_equal(cols, first[1][[7, 3]])
    for other in (_windows(epoch=1), _windows(seed=4)):
        assert not np.array_equal(other[1], first[1])


def test_a_window_larger_than_the_grid_is_refused():
    check_window([6, 10], (6, 10))
    with pytest.raises(ClimatuneError, match=r"task.random_crop.size \[7, 4\] is larger"):
        _windows(size=(7, 4))


def test_batches_are_cropped_with_the_given_probability_reproducibly():
    drawn = [crops_batch(0, 2, b, 0.3) for b in range(2000)]
    assert drawn == [crops_batch(0, 2, b, 0.3) for b in range(2000)]
    assert 0.25 < np.mean(drawn) < 0.35
    assert all(crops_batch(0, 2, b, 1.0) for b in range(20))


def test_masks_hide_squares_at_the_ratio_and_change_with_the_epoch():
    masks = keep_masks(ANCHORS, seed=0, epoch=1, shape=(10, 12), mask_patch=4, ratio=0.5)
    assert masks.shape == (200, 10, 12) and masks.dtype == bool
    assert 0.4 < 1 - masks.mean() < 0.6
    # constant over each 4x4 square (the last ones cut by the edge)
    assert (masks[:, :4, :4] == masks[:, :1, :1]).all()
    again = keep_masks(ANCHORS, seed=0, epoch=1, shape=(10, 12), mask_patch=4, ratio=0.5)
    assert np.array_equal(masks, again)
    other = keep_masks(ANCHORS, seed=0, epoch=2, shape=(10, 12), mask_patch=4, ratio=0.5)
    assert not np.array_equal(masks, other)


def test_window_sizes_vary_per_batch_between_min_size_and_size():
    assert {window_size(0, e, b, (24, 20), None) for e in range(3) for b in range(9)} == {(24, 20)}
    sizes = [window_size(0, 1, b, (24, 20), (16, 13)) for b in range(300)]
    assert sizes == [window_size(0, 1, b, (24, 20), (16, 13)) for b in range(300)]
    heights, widths = {h for h, _ in sizes}, {w for _, w in sizes}
    assert heights == set(range(16, 25)) and widths == set(range(13, 21))
    # every size modulo a U-Net's padding multiple, as regional crops have
    assert {h % 4 for h in heights} == {w % 4 for w in widths} == {0, 1, 2, 3}
    assert sizes != [window_size(0, 2, b, (24, 20), (16, 13)) for b in range(300)]


def test_a_cropped_batch_shares_one_window_size():
    crop = RandomCrop((6, 8), 1.0, (10, 16), periodic_lon=True, seed=0, min_size=(3, 4))
    fields = torch.arange(4 * 10 * 16, dtype=torch.float32).reshape(4, 1, 1, 10, 16)
    whole = Window(fields, fields[:, :, 0], torch.zeros(4, 2, 10, 16), torch.ones(10, 16), True)
    shapes = set()
    for batch in range(12):
        win = crop(whole, torch.arange(4), epoch=0, batch=batch)
        shapes.add(tuple(win.fields.shape[-2:]))
        assert win.fields.shape[-2:] == win.target.shape[-2:] == win.weight.shape[-2:]
        assert tuple(win.fields.shape[-2:]) == window_size(0, 0, batch, (6, 8), (3, 4))
    assert len(shapes) > 3


def test_min_size_must_lie_within_size():
    assert RandomCropConfig(size=(24, 24), min_size=(16, 24)).min_size == (16, 24)
    for bad in ((25, 16), (0, 16)):
        with pytest.raises(ValueError, match="min_size"):
            RandomCropConfig(size=(24, 24), min_size=bad)
