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

    A cell within ``h`` cells of an edge is in fewer windows than a middle one (an edge
    cell of a 49-cell axis in 1 of the 26 positions of a 24-cell window). Moving windows
    that stick out of the grid back inside it trains the edges as often as the middle
    but put 2 windows in 3 against an edge: the A1B downscaler pretrained on such windows
    alone lost more in the middle of its domain (0.49 to 0.66-0.76 K over the fine-tuning
    region, 2 seeds) than it gained at the edges, so starts stay uniform; what ruined
    the domain's edges was the padding to a multiple (``min_size``, :func:`window_size`).

    Examples
    --------
    >>> rows, cols = draw_windows([5], seed=0, epoch=0, grid=(4, 8), size=(2, 6), periodic_lon=True)
    >>> rows.shape, cols.shape, bool(((cols[0] - cols[0, 0]) % 8 == range(6)).all())
    ((1, 2), (1, 6), True)
    """
    check_window(size, grid)
    (n_lat, n_lon), (h, w) = grid, (int(n) for n in size)
    starts = np.array(
        [
            np.random.default_rng((seed, epoch, int(a), _WINDOW)).integers(
                0, (n_lat - h + 1, n_lon if periodic_lon else n_lon - w + 1)
            )
            for a in anchors
        ],
        dtype=np.int64,
    ).reshape(-1, 2)
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
