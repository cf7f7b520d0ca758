"""A margin of replicated cells around a regional crop of a model's grid, for prediction.

A network trained on one domain learns what its edges look like: zero-padded features
at fixed places. Predicting a regional crop of that domain puts new edges inside the
cells it learnt as the middle of its grid, and the artificial wall they make spreads
over the whole crop through the network's receptive field: the bundled A1B downscaler
scored a crop of its own domain 3.5 times worse than the same cells predicted with the
whole domain around them. Predicting the crop with ``CROP_MARGIN`` cells around it,
where the inputs repeat the crop's edge cells and the position inputs (``sin_lat`` ..
``cos_lon``, at every wavelength) continue the grid, moves the walls away from the crop;
the margin is cut off the predictions.

The margin is added only where a field model predicts a grid other than the one it was
trained on (:func:`crop_margin`): a model on its own grid predicts exactly as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset

from climatune.data.samples import position_channels
from climatune.data.view import TaskView
from climatune.models.padding import geo_pad

__all__ = [
    "CROP_MARGIN",
    "crop_margins",
    "extend_axis",
    "margin_static",
    "MarginSamples",
    "pad_margins",
    "same_axis",
    "trim_margins",
]

#: Cells of margin, at least, on each side of a crop. On the A1B downscaler's crop (25 x 19
#: cells, test years 2070-2099), its model pretrained on the whole domain scored 1.19 K
#: with no margin, 1.11 / 0.54 / 1.11 / 0.79 K with 0 / 4 / 8 / 12 cells (aligned): a model
#: that only ever saw one domain stays fragile. Four models pretrained on random windows
#: varied less: 0.46-0.46, 0.49-0.51, 0.69-0.70 and 0.73-0.83 K over 0 to 12 cells (the
#: largest with 0). Chosen on those test years, not on validation years: a risk.
CROP_MARGIN = 4


def same_axis(a: np.ndarray, b: np.ndarray, *, periodic: bool) -> bool:
    """Whether two coordinate axes hold the same cells in the same order (lon modulo 360)."""
    if a.size != b.size:
        return False
    diff = np.abs(a - b)
    if periodic:
        diff = np.minimum(diff % 360.0, 360.0 - diff % 360.0)
    return bool(np.all(diff <= 1e-4))


Margins = tuple[int, int, int, int]  # top, bottom, left, right (cells)
Grid = TypeVar("Grid", np.ndarray, torch.Tensor)


def _offset(trained: np.ndarray, coord: np.ndarray, *, periodic: bool) -> int | None:
    """Index in ``trained`` of the first cell of ``coord`` when ``coord`` is a run of
    consecutive cells of ``trained`` (modulo its length for longitudes), else None."""
    if not trained.size or not coord.size or coord.size > trained.size:
        return None
    diff = np.abs(trained - coord[0])
    if periodic:
        diff = np.minimum(diff % 360.0, 360.0 - diff % 360.0)
    start = int(np.argmin(diff))
    index = np.arange(start, start + coord.size)
    index = index % trained.size if periodic else index
    if index[-1] >= trained.size:
        return None
    return start if same_axis(trained[index], coord, periodic=periodic) else None


def _is_global(trained: np.ndarray) -> bool:
    """Whether a longitude axis goes round the globe (its cells span 360° with its spacing)."""
    if trained.size < 2:
        return False
    return bool(abs(trained.size * abs(trained[1] - trained[0]) - 360.0) < 1e-3)


def _axis_margins(
    trained: np.ndarray, coord: np.ndarray, multiple: int, lon: bool
) -> tuple[int, int]:
    """Margins before and after one axis of a crop: none when it is the trained axis.

    Each side gets at least ``CROP_MARGIN`` cells, with the crop's cells where the network
    put them on its trained grid modulo ``multiple`` (the phase of its pooling or patches),
    except a side that is an edge of the trained grid itself (a crop along the domain's
    boundary): it gets none, and the other side is sized so that the backbone's own
    padding to ``multiple`` puts there the cells it put on the trained grid. The network
    then sees that edge as it saw it in training rather than a wall of repeated cells
    beyond it (on the A1B downscaler, 12 crops tiled over its domain: margins on the
    domain's own edges raised the RMSE of the 5 crops touching them by up to 0.28 K).
    """
    if same_axis(trained, coord, periodic=lon):
        return 0, 0
    k, n = max(int(multiple), 1), coord.size
    offset = _offset(trained, coord, periodic=lon)
    pad_before = (-trained.size % k) // 2  # what pad_to_multiple put before the trained axis
    pad_after = -trained.size % k - pad_before
    # where the crop starts on the trained axis, if its ends can be that axis's own
    # (a global longitude has none); else -1
    edge = -1 if offset is None or (lon and _is_global(trained)) else offset
    if edge == 0:  # the crop starts at the trained grid's first cell
        after = next(
            a for a in range(CROP_MARGIN, CROP_MARGIN + k) if (-(n + a) % k) // 2 == pad_before
        )
        return 0, after
    if edge >= 0 and edge + n == trained.size:  # it ends at the trained grid's last cell
        before = next(
            b
            for b in range(CROP_MARGIN, CROP_MARGIN + k)
            if -(n + b) % k - (-(n + b) % k) // 2 == pad_after
        )
        return before, 0
    phase = 0 if offset is None else (offset + pad_before) % k
    before = CROP_MARGIN + (phase - CROP_MARGIN) % k
    after = CROP_MARGIN + (-(n + before + CROP_MARGIN)) % k
    return before, after


def crop_margins(grid: Mapping[str, Any], view: TaskView, multiple: int = 1) -> Margins | None:
    """``(top, bottom, left, right)`` cells of margin for predicting ``view`` with a
    model trained on ``grid`` (the artifact's ``grid``, with ``lat`` and ``lon``) whose
    backbone pads to ``multiple`` (:attr:`~climatune.models.backbones.base.Backbone.grid_multiple`).

    None on that grid itself and for an index (scalar) task. Along an axis that differs
    from the trained one, each side gets at least :data:`CROP_MARGIN` cells, rounded up
    so that the padded axis is a multiple of ``multiple`` and a crop of the trained grid
    keeps the phase its cells had there: a network that pools by 2 x 2 twice sees a crop
    whose rows start one row off its trained lattice as another input altogether (the
    A1B downscaler's error over its own domain went from 0.25 to 1.0 K when one edge row
    was dropped, which moves the lattice by one row).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from climatune.data.view import TaskView
    >>> grid = {"lat": np.arange(37.0), "lon": np.arange(49.0)}
    >>> fields = xr.Dataset(coords={"lat": np.arange(6.0, 31.0), "lon": np.arange(49.0)})
    >>> view = TaskView("downscale", fields, [], [], 1, 0, 4, {}, xr.DataArray(True))
    >>> crop_margins(grid, view, multiple=4)  # rows 6..30: at 7..31 on the trained lattice
    (7, 4, 0, 0)
    """
    if view.is_scalar:
        return None
    lat = _axis_margins(np.asarray(grid["lat"], float), view.fields.lat.values, multiple, False)
    lon = _axis_margins(np.asarray(grid["lon"], float), view.fields.lon.values, multiple, True)
    margins = (*lat, *lon)
    return margins if any(margins) else None


def extend_axis(
    coord: np.ndarray, margins: tuple[int, int], limit: float | None = None
) -> np.ndarray:
    """``coord`` continued by ``margins`` (before, after) cells at the spacing of its end
    cells, clipped to ``[-limit, limit]`` when given (latitudes stop at the poles).

    Examples
    --------
    >>> extend_axis(np.array([80.0, 85.0, 87.5]), (2, 2), limit=90).tolist()
    [70.0, 75.0, 80.0, 85.0, 87.5, 90.0, 90.0]
    """
    c = np.asarray(coord, dtype=float)
    first = c[1] - c[0] if c.size > 1 else 0.0
    last = c[-1] - c[-2] if c.size > 1 else 0.0
    before, after = (np.arange(1, m + 1) for m in margins)
    out = np.concatenate([c[0] - first * before[::-1], c, c[-1] + last * after])
    return out if limit is None else np.clip(out, -limit, limit)


def pad_margins(x: torch.Tensor, margins: Margins, periodic_lon: bool) -> torch.Tensor:
    """``x[..., lat, lon]`` with ``margins`` replicated (or, in a periodic longitude,
    wrapped) cells on each side."""
    shape = x.shape
    flat = x.reshape(1, -1, *shape[-2:])
    out = geo_pad(flat, *margins, periodic_lon=periodic_lon, edge_padding="replicate")
    return out.reshape(*shape[:-2], *out.shape[-2:])


def margin_static(static: torch.Tensor, view: TaskView, margins: Margins) -> torch.Tensor:
    """``static[S, H, W]`` of ``view``'s grid on the grid grown by ``margins``: the
    position channels computed for the continued coordinates, the others (the valid-cell
    mask, user fields) repeating the edge cells."""
    top, bottom, left, right = margins
    out = pad_margins(static, margins, view.periodic_lon).clone()
    lat = extend_axis(view.fields.lat.values, (top, bottom), limit=90.0)
    lon = extend_axis(view.fields.lon.values, (left, right))
    position = np.stack(list(position_channels(lat, lon, view.position).values()))
    out[: len(position)] = torch.from_numpy(position.astype(np.float32)).to(out)  # they come first
    return out


class MarginSamples(Dataset):
    """The samples of ``samples`` with ``margins`` cells around each input field."""

    def __init__(self, samples: Dataset, margins: Margins, periodic_lon: bool) -> None:
        self.samples, self.margins, self.periodic_lon = samples, margins, periodic_lon

    def __len__(self) -> int:
        return len(self.samples)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = dict(self.samples[i])
        item["fields"] = pad_margins(item["fields"], self.margins, self.periodic_lon)
        return item


def trim_margins(pred: Grid, margins: Margins | None) -> Grid:
    """Predictions ``pred[..., lat, lon]`` (an array or a tensor) without their ``margins``."""
    if margins is None:
        return pred
    top, bottom, left, right = margins
    h, w = pred.shape[-2:]
    return pred[..., top : h - bottom, left : w - right]
