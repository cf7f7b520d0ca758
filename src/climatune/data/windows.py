"""Random windows and masks of training samples, drawn from ``(seed, epoch, sample)``.

A pretraining run may train on randomly placed windows of its grid (``task.random_crop``)
so that the network is not tied to the edges of its domain, and may hide squares of its
inputs for a masked-reconstruction objective (``task.objectives``). Both are plain plans
over grid indices, drawn here with NumPy; the training task applies them to tensors. Each
draw depends only on the run's seed, the epoch and the sample's anchor (its time index),
never on the batch it falls in or the worker that reads it, so a resumed run replays them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from climatune.errors import ClimatuneError

__all__ = [
    "check_window",
    "crops_batch",
    "draw_windows",
    "edge_starts",
    "keep_masks",
    "window_size",
]

# the last entropy word of each kind of draw, so that windows and masks are independent
_WINDOW, _BATCH, _MASK, _SIZE = 1, 2, 3, 4


def check_window(
    size: Sequence[int], grid: tuple[int, int], what: str = "task.random_crop"
) -> None:
    """Refuse a window larger than the ``(lat, lon)`` grid it is cut from."""
    h, w = (int(n) for n in size)
    if h > grid[0] or w > grid[1]:
        raise ClimatuneError(
            f"{what}.size [{h}, {w}] is larger than the training grid [{grid[0]}, {grid[1]}] "
            f"(lat, lon cells); give a window of at most [{grid[0]}, {grid[1]}]"
        )


def crops_batch(seed: int, epoch: int, batch: int, prob: float) -> bool:
    """Whether training batch ``batch`` of ``epoch`` is cropped (probability ``prob``).

    A batch is cropped whole, since its samples must share one shape.
    """
    if prob >= 1.0:
        return True
    return bool(np.random.default_rng((seed, epoch, batch, _BATCH)).random() < prob)


def edge_starts(drawn: np.ndarray, n: int, size: int) -> np.ndarray:
    """Starts ``drawn`` among ``1 - size .. n - 1`` moved so the windows lie in ``0 .. n - 1``.

    A window that sticks out of the grid is shifted back inside it, so the windows
    drawn at the ``size - 1`` positions that overlap each edge all hold that edge cell.

    Examples
    --------
    >>> edge_starts(np.arange(-2, 6), n=6, size=3).tolist()
    [0, 0, 0, 1, 2, 3, 3, 3]
    """
    return np.clip(drawn, 0, n - size)


def window_size(
    seed: int, epoch: int, batch: int, size: Sequence[int], min_size: Sequence[int] | None
) -> tuple[int, int]:
    """The ``(lat, lon)`` size of training batch ``batch``'s windows in ``epoch``: ``size``,
    or with ``min_size`` one drawn between the two (inclusive) from ``(seed, epoch, batch)``.

    Examples
    --------
    >>> window_size(0, 0, 5, (24, 24), None)
    (24, 24)
    >>> sizes = {window_size(0, 0, b, (24, 20), (16, 17)) for b in range(200)}
    >>> min(h for h, _ in sizes), max(h for h, _ in sizes), sorted({w for _, w in sizes})
    (16, 24, [17, 18, 19, 20])
    """
    h, w = (int(n) for n in size)
    if min_size is None:
        return h, w
    rng = np.random.default_rng((seed, epoch, batch, _SIZE))
    drawn = rng.integers((int(min_size[0]), int(min_size[1])), (h + 1, w + 1))
    return int(drawn[0]), int(drawn[1])


def draw_windows(
    anchors: Sequence[int] | np.ndarray,
    *,
    seed: int,
    epoch: int,
    grid: tuple[int, int],
    size: Sequence[int],
    periodic_lon: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of each sample's window: ``[B, h]`` and ``[B, w]``.

    The window of the sample anchored at ``anchor`` starts at a row drawn from
    ``(seed, epoch, anchor)`` so that it lies within the latitudes of the grid (never
    across a pole), and at a column anywhere on a periodic grid, its columns wrapping
    across the longitude seam (modulo the grid's width), or within a regional grid.

    Along an axis with edges (latitude, and longitude of a regional grid), the start is
    drawn among every position of a window that overlaps the grid, ``1 - h .. n - 1``,
    then moved inside it (:func:`edge_starts`): an edge cell is then in ``h`` of the
    ``n + h - 1`` draws. Starts drawn among the windows inside the grid alone put it in
    1 of ``n - h + 1`` (a 24-cell window on 49 cells: 1 in 26 against 1 in 3), and a
    network trained on such windows alone scored the whole domain's edge cells 5 times
    worse than its middle.

    Examples
    --------
    >>> rows, cols = draw_windows([5], seed=0, epoch=0, grid=(4, 8), size=(2, 6), periodic_lon=True)
    >>> rows.shape, cols.shape, bool(((cols[0] - cols[0, 0]) % 8 == range(6)).all())
    ((1, 2), (1, 6), True)
    """
    check_window(size, grid)
    (n_lat, n_lon), (h, w) = grid, (int(n) for n in size)
    low = (1 - h, 0 if periodic_lon else 1 - w)
    drawn = np.array(
        [
            np.random.default_rng((seed, epoch, int(a), _WINDOW)).integers(low, (n_lat, n_lon))
            for a in anchors
        ],
        dtype=np.int64,
    ).reshape(-1, 2)
    starts = np.stack(
        [
            edge_starts(drawn[:, 0], n_lat, h),
            drawn[:, 1] if periodic_lon else edge_starts(drawn[:, 1], n_lon, w),
        ],
        axis=1,
    )
    rows = starts[:, :1] + np.arange(h)
    cols = (starts[:, 1:] + np.arange(w)) % n_lon
    return rows, cols


def keep_masks(
    anchors: Sequence[int] | np.ndarray,
    *,
    seed: int,
    epoch: int,
    shape: tuple[int, int],
    mask_patch: int,
    ratio: float,
) -> np.ndarray:
    """``[B, H, W]`` keep-masks of the masked-reconstruction objective, one per sample.

    Squares of ``mask_patch`` x ``mask_patch`` cells are hidden with probability
    ``ratio``, drawn from ``(seed, epoch, anchor)``: a new mask each epoch for training,
    and the same one every epoch for validation (pass one ``epoch`` for it).
    """
    ph, pw = -(-shape[0] // mask_patch), -(-shape[1] // mask_patch)
    square = np.ones((mask_patch, mask_patch), dtype=bool)
    masks = [
        np.kron(
            np.random.default_rng((seed, epoch, int(a), _MASK)).random((ph, pw)) >= ratio, square
        )[: shape[0], : shape[1]]
        for a in anchors
    ]
    return np.stack(masks) if masks else np.zeros((0, *shape), dtype=bool)
