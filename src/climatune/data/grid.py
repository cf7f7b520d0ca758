"""Grid helpers: coarsening, bilinear interpolation back to a fine grid, cell-area weights."""

from __future__ import annotations

import numpy as np
import xarray as xr

from climatune.errors import ClimatuneError

__all__ = [
    "coarsen",
    "bilinear_to",
    "coarsen_bilinear",
    "contiguous_lon",
    "is_global",
    "lat_weights",
    "normalised_weights",
]


def is_global(lon: np.ndarray | xr.DataArray, tol: float = 0.5) -> bool:
    """True when longitudes wrap the globe (spacing × count ≈ 360°, within ``tol`` steps).

    A grid one column short of the globe is regional: its edges are not neighbours.
    """
    lon = np.asarray(lon)
    if lon.size < 2:
        return False
    step = float(np.median(np.diff(lon)))
    return abs(step * lon.size - 360.0) <= tol * step


def contiguous_lon(
    lon: np.ndarray | xr.DataArray, start: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The order that makes longitudes run east without a break, and their values in it.

    Longitudes are taken modulo 360 (keeping the first of any duplicates) and run east from
    ``start``: by default from 0° on a global grid (:func:`is_global`) and, on any other,
    from the cell after the widest gap, so that a regional grid across 0° keeps its
    neighbours together. Longitudes met before 0° along the way become negative so that
    the values increase; a longitude already in that form keeps its exact value.

    Returns
    -------
    index, values
        Positions into ``lon`` in eastward order, and the longitudes at those positions.

    Examples
    --------
    >>> contiguous_lon(np.array([0.0, 10.0, 340.0, 350.0]))
    (array([2, 3, 0, 1]), array([-20., -10.,   0.,  10.]))
    """
    lon = np.asarray(lon)
    wrapped = np.mod(lon, 360.0)
    wrapped[wrapped >= 360.0] -= 360.0  # -1e-7 % 360 rounds to 360
    _, index = np.unique(wrapped, return_index=True)  # ascending, first of any duplicates
    ring = wrapped[index]
    if start is None and ring.size > 1 and not is_global(ring):
        gaps = np.diff(ring, append=ring[0] + 360.0)
        start = ring[(int(np.argmax(gaps)) + 1) % ring.size]
    if start is not None:
        index = index[np.argsort(np.mod(ring - start, 360.0), kind="stable")]
        ring = wrapped[index]
    turned = np.cumsum(np.diff(ring, prepend=ring[:1]) < 0)  # 1 from 0° on, if passed
    values = ring - 360.0 * (turned[-1:] - turned)
    turns = np.round((values - lon[index]) / 360.0)  # whole turns from the stored value
    return index, (lon[index] + 360.0 * turns).astype(lon.dtype, copy=False)


def coarsen(obj: xr.Dataset | xr.DataArray, factor: int) -> xr.Dataset | xr.DataArray:
    """Block-average ``factor``×``factor`` cells, ignoring NaN cells (trims ragged edges)."""
    return obj.coarsen(lat=factor, lon=factor, boundary="trim").mean()


def _valid_interp(
    obj: xr.Dataset | xr.DataArray, **coords: xr.DataArray
) -> xr.Dataset | xr.DataArray:
    """Bilinear interpolation that weights the valid (finite) neighbours only.

    A point between a NaN cell (land in an SST field) and valid ones takes the weighted
    mean of the valid ones instead of NaN, so a coast does not eat into the sea; it is NaN
    only where every neighbour is.
    """
    valid = obj.notnull()
    total = obj.fillna(0.0).interp(**coords, method="linear")
    weight = valid.astype(float).interp(**coords, method="linear")
    return (total / weight).where(weight > 1e-6)


def bilinear_to(
    obj: xr.Dataset | xr.DataArray, lat: xr.DataArray, lon: xr.DataArray
) -> xr.Dataset | xr.DataArray:
    """Bilinear interpolation onto ``lat``/``lon``, ignoring NaN neighbours; points outside
    the coarse grid take the nearest edge value, so the fine grid is covered everywhere the
    coarse one is valid."""
    out = _valid_interp(obj, lat=lat, lon=lon)
    edge = _valid_interp(
        obj,
        lat=lat.clip(float(obj.lat.min()), float(obj.lat.max())),
        lon=lon.clip(float(obj.lon.min()), float(obj.lon.max())),
    ).assign_coords(lat=lat, lon=lon)
    return out.fillna(edge)


def coarsen_bilinear(obj: xr.Dataset | xr.DataArray, factor: int) -> xr.Dataset | xr.DataArray:
    """Coarsen by ``factor`` then interpolate back: the input of a downscaling task."""
    return bilinear_to(coarsen(obj, factor), obj.lat, obj.lon)


def lat_weights(lat: xr.DataArray, valid: xr.DataArray | None = None) -> xr.DataArray:
    """cos(latitude) on the ``valid`` cells, 0 elsewhere, with mean 1 over the valid cells.

    Parameters
    ----------
    lat
        Latitude coordinate in degrees.
    valid
        Boolean mask broadcastable against ``lat`` (e.g. ``(time, lat, lon)``); all
        cells are valid when omitted.
    """
    cos = np.cos(np.deg2rad(lat))  # a DataArray: numpy's stubs say ndarray
    return normalised_weights(cos.clip(min=0.0), valid)  # type: ignore[arg-type]


def normalised_weights(weights: xr.DataArray, valid: xr.DataArray | None = None) -> xr.DataArray:
    """``weights`` on the ``valid`` cells, 0 elsewhere, scaled to mean 1 over the valid cells.

    Parameters
    ----------
    weights
        Non-negative cell weights, such as cos(latitude) or a task view's weights.
    valid
        Boolean mask broadcastable against ``weights``; all cells are valid when omitted.
    """
    valid = xr.ones_like(weights, dtype=bool) if valid is None else valid.astype(bool)
    w = xr.where(valid, weights, 0.0)
    n_valid = int(valid.broadcast_like(w).sum())
    total = float(w.sum())
    if n_valid == 0 or total <= 0.0:
        raise ClimatuneError(
            "no valid cell to score: prediction and truth are never both finite inside the "
            "region; check the region and the NaN cells of the data"
        )
    return (w * (n_valid / total)).rename("weight")
