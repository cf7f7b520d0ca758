"""Regridding between regular lat/lon grids, lazily, as two small matrix products per step.

Both methods are separable on a regular grid: a field ``x`` (lat, lon) becomes
``A @ x @ B.T`` with one weight matrix per axis. The conservative weights are
``xarray-regrid``'s (cell overlaps, with its spherical correction on latitude), and the
bilinear ones are those of linear interpolation along each axis, as ``xarray-regrid``'s
``regrid.linear`` (``xr.interp``) computes them; ``tests/data/test_sources.py`` checks
both against ``xarray-regrid`` itself. Applying the weights ourselves, per Dask block, as
sparse products (a few source cells per target cell), costs little where ``xarray-regrid``'s ``xr.dot``/``interp`` graph costs
about 0.1 s per block on a small grid: that made a streamed read slower than reading
one sample at a time (the loader's target in ``BENCHMARKS.md``).

NaN cells: bilinear gives NaN wherever a neighbour with weight is NaN (as ``interp``);
conservative averages the valid part of the overlapped cells (``skipna``). Target cells
outside the source's span are NaN.

Examples
--------
>>> import numpy as np, xarray as xr
>>> da = xr.DataArray(np.arange(12.0).reshape(1, 3, 4), dims=("time", "lat", "lon"),
...                   coords={"lat": [0.0, 10, 20], "lon": [0.0, 10, 20, 30]})
>>> regrid(da, np.array([5.0, 15]), np.array([5.0, 25]), "bilinear").values.tolist()
[[[2.5, 4.5], [6.5, 8.5]]]
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import xarray as xr
from scipy import sparse

from climatune.errors import ClimatuneError

__all__ = ["axis_weights", "regrid"]

Method = Literal["bilinear", "conservative"]


def _linear(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``[target, source]`` weights of linear interpolation; rows outside are NaN."""
    eye = np.eye(source.size)
    weights = np.stack([np.interp(target, source, eye[k]) for k in range(source.size)], axis=1)
    outside = (target < source.min() - 1e-9) | (target > source.max() + 1e-9)
    weights[outside] = np.nan
    return weights


def _conservative(source: np.ndarray, target: np.ndarray, latitude: bool) -> np.ndarray:
    """``[target, source]`` overlap weights of ``xarray-regrid`` (rows sum to 1)."""
    try:
        from xarray_regrid.methods.conservative import get_weights, lat_weight
        from xarray_regrid.utils import normalize_overlap
    except ImportError:  # pragma: no cover - a declared dependency
        raise ClimatuneError(
            "conservative regridding needs xarray-regrid; install it with pip install xarray-regrid"
        ) from None
    weights = get_weights(source, target)  # [source, target]
    if latitude:  # cells shrink towards the poles
        res = float(np.median(np.diff(source))) if source.size > 1 else 180.0
        weights = normalize_overlap(weights * lat_weight(source, res)[:, None])
    weights = weights.T.copy()
    outside = (target < source.min() - 1e-9) | (target > source.max() + 1e-9)
    weights[outside] = np.nan
    return weights


def axis_weights(
    source: np.ndarray, target: np.ndarray, method: Method, latitude: bool
) -> np.ndarray:
    """The ``[target, source]`` weights of one axis (NaN rows: outside the source)."""
    source, target = np.asarray(source, float), np.asarray(target, float)
    if method == "conservative":
        return _conservative(source, target, latitude)
    return _linear(source, target)


class _Weights(NamedTuple):
    """One axis's weights as a sparse matrix (a few cells per row), its non-zero pattern
    (for the NaN rule of bilinear) and its rows outside the source (NaN)."""

    matrix: sparse.csr_matrix
    pattern: sparse.csr_matrix
    outside: np.ndarray


def _sparse(weights: np.ndarray) -> _Weights:
    outside = np.isnan(weights).any(1)
    dense = np.nan_to_num(weights).astype(np.float32)
    pattern = (dense != 0).astype(np.float32)
    return _Weights(sparse.csr_matrix(dense), sparse.csr_matrix(pattern), outside)


def _product(x: np.ndarray, a: sparse.csr_matrix, b: sparse.csr_matrix) -> np.ndarray:
    """``a @ x @ b.T`` over the last two axes of ``x``, as two sparse-dense products."""
    *lead, n_lat, n_lon = x.shape
    y = (b @ x.reshape(-1, n_lon).T).T.reshape(-1, n_lat, b.shape[0])  # [..., lat, lon_t]
    y = np.ascontiguousarray(y.transpose(1, 0, 2)).reshape(n_lat, -1)
    z = (a @ y).reshape(a.shape[0], -1, b.shape[0]).transpose(1, 0, 2)
    return np.ascontiguousarray(z).reshape(*lead, a.shape[0], b.shape[0])


def _apply(x: np.ndarray, a: _Weights, b: _Weights, method: str) -> np.ndarray:
    """``a @ x @ b.T`` over the last two axes of ``x``, with the NaN rule of ``method``."""
    x = x.astype(np.float32, copy=False)
    nan = np.isnan(x)
    any_nan = bool(nan.any())
    out = _product(np.where(nan, np.float32(0), x) if any_nan else x, a.matrix, b.matrix)
    if method == "conservative" and any_nan:
        valid = _product((~nan).astype(np.float32), a.matrix, b.matrix)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(valid > 1e-6, out / valid, np.float32(np.nan))
    elif any_nan:
        out[_product(nan.astype(np.float32), a.pattern, b.pattern) > 0] = np.nan
    rows = a.outside[:, None] | b.outside[None, :]
    if rows.any():
        out[..., rows] = np.nan
    return out


def _periodic_lon(source: np.ndarray, target: np.ndarray, method: Method) -> np.ndarray:
    """Longitude weights of a global source: computed on the source repeated one turn
    each side of itself, then folded back onto its own columns.

    The target is unwrapped first, so that a regional grid across the source's seam
    (318..354, 0..42 on a 0..360 source) is one increasing run (318..402), as
    conservative weights need (they failed there with a pandas interval error).
    """
    n = source.size
    target = np.unwrap(np.asarray(target, float), period=360.0)
    padded = np.concatenate([source - 360.0, source, source + 360.0])
    weights = axis_weights(padded, target, method, latitude=False)
    return weights[:, :n] + weights[:, n : 2 * n] + weights[:, 2 * n :]


def _regional_lon(source: np.ndarray, target: np.ndarray, method: Method) -> np.ndarray:
    """Longitude weights of a regional source: the target unwrapped into one increasing
    run, compared with the source one turn either side too; rows outside all are NaN."""
    target = np.unwrap(np.asarray(target, float), period=360.0)
    source = np.asarray(source, float)
    turns = [axis_weights(source + k, target, method, latitude=False) for k in (-360, 0, 360)]
    outside = np.all([np.isnan(w).any(1) for w in turns], axis=0)
    out = np.sum([np.nan_to_num(w) for w in turns], axis=0)
    out[outside] = np.nan
    return out


def regrid(
    da: xr.DataArray, lat: np.ndarray, lon: np.ndarray, method: Method, *, periodic: bool = False
) -> xr.DataArray:
    """``da`` (``..., lat, lon``) on the grid ``lat`` x ``lon``, lazily block by block.

    Longitudes are compared as given (``lon`` in the source's range); ``periodic``: the
    source is global, and target cells across its seam use the cells on both sides.
    """
    a = _sparse(axis_weights(da.lat.values, lat, method, latitude=True))
    b = _sparse(
        _periodic_lon(da.lon.values, lon, method)
        if periodic
        else _regional_lon(da.lon.values, lon, method)
    )
    src = da.rename(lat="_lat", lon="_lon")
    if src.chunks is not None:
        src = src.chunk({"_lat": -1, "_lon": -1})
    out = xr.apply_ufunc(
        _apply,
        src,
        input_core_dims=[["_lat", "_lon"]],
        output_core_dims=[["lat", "lon"]],
        kwargs={"a": a, "b": b, "method": method},
        dask="parallelized",
        dask_gufunc_kwargs={"output_sizes": {"lat": len(lat), "lon": len(lon)}},
        output_dtypes=[np.float32],
        keep_attrs=True,
    )
    return out.assign_coords(lat=np.asarray(lat, float), lon=np.asarray(lon, float))
