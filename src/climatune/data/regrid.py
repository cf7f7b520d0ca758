"""Regridding between regular lat/lon grids, lazily, as two small matrix products per step.

Both methods are separable on a regular grid: a field ``x`` (lat, lon) becomes
``A @ x @ B.T`` with one weight matrix per axis. The conservative weights are
``xarray-regrid``'s (cell overlaps, with its spherical correction on latitude), and the
bilinear ones are those of linear interpolation along each axis, as ``xarray-regrid``'s
``regrid.linear`` (``xr.interp``) computes them; ``tests/data/test_sources.py`` checks
both against ``xarray-regrid`` itself. Applying the weights ourselves, per Dask block,
costs microseconds per step where ``xarray-regrid``'s ``xr.dot``/``interp`` graph costs
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

from typing import Literal

import numpy as np
import xarray as xr

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


def _apply(x: np.ndarray, a: np.ndarray, b: np.ndarray, method: str) -> np.ndarray:
    """``a @ x @ b.T`` over the last two axes of ``x``, with the NaN rule of ``method``."""
    nan = np.isnan(x)
    filled = np.where(nan, 0.0, x)
    a0, b0 = np.nan_to_num(a), np.nan_to_num(b)
    out = a0 @ filled @ b0.T
    if method == "conservative":
        valid = a0 @ (~nan).astype(float) @ b0.T
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(valid > 1e-6, out / valid, np.nan)
    elif nan.any():
        touched = (np.abs(a0) > 0).astype(float) @ nan.astype(float) @ (np.abs(b0) > 0).T
        out = np.where(touched > 0, np.nan, out)
    rows = np.isnan(a).any(1)[:, None] | np.isnan(b).any(1)[None, :]
    return np.where(rows, np.nan, out).astype(x.dtype)


def regrid(da: xr.DataArray, lat: np.ndarray, lon: np.ndarray, method: Method) -> xr.DataArray:
    """``da`` (``..., lat, lon``) on the grid ``lat`` x ``lon``, lazily block by block.

    Longitudes are compared as given: pad a global source across the seam first.
    """
    a = axis_weights(da.lat.values, lat, method, latitude=True)
    b = axis_weights(da.lon.values, lon, method, latitude=False)
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
        output_dtypes=[da.dtype],
        keep_attrs=True,
    )
    return out.assign_coords(lat=np.asarray(lat, float), lon=np.asarray(lon, float))
