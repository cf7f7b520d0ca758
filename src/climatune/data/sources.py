"""Multi-source archives: several stores, each on its own grid and calendar, read as one.

``data.sources`` lists archives (CMIP-style models, a reanalysis, observations). Each is
opened lazily, its variables renamed to canonical names, converted to common units,
regridded on the fly to the common grid ``data.grid`` (bilinear, or conservative with
``xarray-regrid``'s weights, per variable: :mod:`climatune.data.regrid`), and relabelled on the ``(year, month)`` of its steps, so
that a 360-day model and a noleap one share labels, never datetimes. The sources are
then joined along ``time`` into one dataset with a ``source`` coordinate naming the
archive of every step; :func:`~climatune.data.splits.time_runs` starts a new run at each
source, so no sample spans two of them.

Regridding is one Dask task per block of the sources' own time chunks, so reading a window
of steps regrids only the chunks that hold it: the streaming loader's memory bound holds.

A source that lacks a variable gets it as all-NaN steps, with a note: the network's stem
sees a valid fraction of 0 there and the loss ignores the missing target cells.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import cftime
import numpy as np
import xarray as xr

from climatune.data.climatology import is_sub_annual, step_unit
from climatune.data.grid import contiguous_lon, is_global
from climatune.data.inspect import gaps
from climatune.data.io import open_dataset
from climatune.data.regrid import regrid
from climatune.data.settings import DataConfig, GridSpec, SourceConfig
from climatune.data.units import to_units
from climatune.errors import ClimatuneError

__all__ = [
    "SOURCE",
    "open_sources",
    "open_source",
    "target_grid",
    "check_coverage",
    "grid_spec",
    "grid_note",
    "require_one_source",
    "other_archive",
    "source_segments",
    "mixing_probabilities",
    "describe_sources",
]

_log = logging.getLogger("climatune")

#: The coordinate along ``time`` naming the source of every step
SOURCE = "source"


def open_source(source: SourceConfig) -> xr.Dataset:
    """One source, opened lazily, with its variables under their canonical names.

    ``variables`` renames: the fields it lists are read under their canonical names, and
    every other gridded field under its own (unless a listed one takes that name).
    """
    ds = open_dataset(source.path)
    if "time" not in ds.dims:
        raise ClimatuneError(f"source '{source.name}' ({source.path}) has no time axis")
    gridded = [n for n, v in ds.data_vars.items() if {"time", "lat", "lon"} <= set(v.dims)]
    if source.variables is None:  # its gridded fields (an index series is one archive's)
        return ds[gridded]
    missing = [f for f in source.variables.values() if f not in ds.data_vars]
    if missing:
        raise ClimatuneError(
            f"source '{source.name}' has no variable {missing[0]!r}; its files have: "
            f"{', '.join(map(str, ds.data_vars))} (fix data.sources[].variables)"
        )
    flat = [(c, f) for c, f in source.variables.items() if f not in gridded]
    if flat:  # an index series or a static map would be broadcast as a field
        canonical, field = flat[0]
        raise ClimatuneError(
            f"source '{source.name}' maps {canonical} to {field!r}, which is not a (time, lat, "
            f"lon) field (its dimensions: {', '.join(map(str, ds[field].dims)) or 'none'}); "
            "map each name to a gridded field of that source (fix data.sources[].variables)"
        )
    listed = list(source.variables.values())
    twice = sorted({f for f in listed if listed.count(f) > 1})
    if twice:  # a rename keeps one of the names: the other would be fed as missing
        names = [c for c, f in source.variables.items() if f == twice[0]]
        raise ClimatuneError(
            f"source '{source.name}' maps its variable {twice[0]!r} to {' and '.join(names)}; "
            "map each of its variables to one name (fix data.sources[].variables)"
        )
    unlisted = [n for n in gridded if n not in listed and n not in source.variables]
    renamed = {f: c for c, f in source.variables.items() if f != c}
    return ds[listed + unlisted].rename(renamed)


def _axis(first: float, last: float, step: float) -> np.ndarray:
    return first + step * np.arange(int(np.floor((last - first) / step + 1e-6)) + 1)


def target_grid(grid: str | GridSpec | None, opened: Mapping[str, xr.Dataset]) -> xr.Dataset:
    """The common grid: a source's (by name; the first source's by default) or explicit."""
    if isinstance(grid, GridSpec):
        lat, lon = _axis(*grid.lat), _axis(*grid.lon)
        if np.unique(lon % 360.0).size != lon.size:
            raise ClimatuneError("data.grid.lon covers a longitude twice; stop before 360")
        # a file's longitudes after io.canonicalize: a global grid from 0°, a regional one
        # from its first cell, across 0° as -40..30, never 320..350, 0..30 (maps, crops)
        lon = contiguous_lon(lon, None if is_global(lon) else lon[0] % 360.0)[1]
    else:
        ref = opened[grid or next(iter(opened))]
        lat, lon = ref.lat.values, ref.lon.values
    return xr.Dataset(
        coords={
            "lat": ("lat", np.asarray(lat, float), {"units": "degrees_north"}),
            "lon": ("lon", np.asarray(lon, float), {"units": "degrees_east"}),
        }
    )


def _covered(ds: xr.Dataset, target: xr.Dataset) -> np.ndarray:
    """``(lat, lon)`` bool: the target cells inside ``ds``'s span, where regridding it gives
    values (outside, :func:`~climatune.data.regrid.regrid` gives NaN)."""
    tol = 1e-6
    lat = (target.lat.values >= float(ds.lat.min()) - tol) & (
        target.lat.values <= float(ds.lat.max()) + tol
    )
    if is_global(ds.lon):
        lon = np.ones(target.lon.size, bool)
    else:  # the target's longitudes in the source's own range, as _regrid reads them
        lo = float(ds.lon.min())
        lon = (target.lon.values - lo) % 360.0 + lo <= float(ds.lon.max()) + tol
    return lat[:, None] & lon[None, :]


def check_coverage(opened: Mapping[str, xr.Dataset], target: xr.Dataset) -> int:
    """How many cells of the common grid lie outside every source, with a note when some do.

    Those cells are NaN in every step of every variable: masked out of the loss and the
    metrics, and land in the land-sea mask.

    Raises
    ------
    ClimatuneError
        When no cell of the common grid lies inside any source.
    """
    covered = np.zeros((target.lat.size, target.lon.size), bool)
    for ds in opened.values():
        covered |= _covered(ds, target)
    spans = "; ".join(
        f"{name}: lat {float(ds.lat.min()):g}..{float(ds.lat.max()):g}, "
        f"lon {float(ds.lon.min()):g}..{float(ds.lon.max()):g}"
        for name, ds in opened.items()
    )
    if not covered.any():
        raise ClimatuneError(
            f"data.grid (lat {float(target.lat.min()):g}..{float(target.lat.max()):g}, lon "
            f"{float(target.lon.min()):g}..{float(target.lon.max()):g}) lies outside every "
            f"source ({spans}); choose a data.grid inside them"
        )
    empty = int((~covered).sum())
    if empty:
        rows = target.lat.values[~covered.any(axis=1)]
        where = f", rows at lat {', '.join(f'{v:g}' for v in rows[:6])}" if rows.size else ""
        where += " ..." if rows.size > 6 else ""
        _log.warning(
            "note: data.grid reaches beyond every source: %d of %d cells%s hold no data "
            "(all NaN, masked out of the loss and the metrics like land; sources: %s)",
            empty,
            covered.size,
            where,
            spans,
        )
    return empty


def _same_grid(ds: xr.Dataset, target: xr.Dataset) -> bool:
    return (
        ds.lat.size == target.lat.size
        and ds.lon.size == target.lon.size
        and bool(np.allclose(ds.lat, target.lat) and np.allclose(ds.lon % 360, target.lon % 360))
    )


def _regrid(ds: xr.Dataset, target: xr.Dataset, source: SourceConfig) -> xr.Dataset:
    """``ds`` on the target grid, lazily; bilinear or conservative per variable."""
    if _same_grid(ds, target):
        return ds.assign_coords(lat=target.lat, lon=target.lon)
    periodic = is_global(ds.lon)
    lo = float(ds.lon.min())
    lon = (target.lon.values - lo) % 360.0 + lo  # in the source's own range
    out = {}
    for name, da in ds.data_vars.items():
        method = source.method(str(name))
        got = regrid(da, target.lat.values, lon, method, periodic=periodic)  # type: ignore[arg-type]
        out[name] = got.assign_attrs(da.attrs).astype(np.float32)
    regridded = xr.Dataset(out).assign_coords(lat=target.lat, lon=target.lon)
    return regridded.transpose("time", ..., "lat", "lon")


def _relabel(ds: xr.Dataset, calendar: str, name: str) -> xr.Dataset:
    """Steps relabelled on the first day of their (year, month) in ``calendar``."""
    time = ds.time
    years, months = time.dt.year.values, time.dt.month.values
    keys = years.astype(np.int64) * 12 + months
    if np.unique(keys).size != keys.size:
        raise ClimatuneError(
            f"source '{name}' has several steps in one month; sources are aligned on "
            "(year, month) labels, so resample it to monthly or annual means first"
        )
    labels = [cftime.datetime(int(y), int(m), 1, calendar=calendar) for y, m in zip(years, months)]
    return ds.assign_coords(time=xr.DataArray(labels, dims="time", attrs=time.attrs))


def _same_quantity(
    opened: Mapping[str, xr.Dataset], name: str, lacking: list[str], names: list[str]
) -> str:
    """A hint naming the fields of source ``name`` that hold a ``lacking`` variable under
    another name: the same CF ``standard_name`` as that variable has in another source."""
    standard = {}
    for other, ds in opened.items():
        for var in lacking:
            if other != name and var in ds.data_vars and var not in standard:
                standard[var] = ds[var].attrs.get("standard_name")
    own = opened[name]
    maps = [
        f"{var}: {field}"
        for var in lacking
        for field in own.data_vars
        if str(field) not in names
        and standard.get(var)
        and own[field].attrs.get("standard_name") == standard[var]
    ]
    if not maps:
        return ""
    return (
        f"; it has {', '.join(m.split(': ')[1] for m in maps)} with the same standard_name: "
        f"map it with data.sources[].variables: {{{', '.join(maps)}}}"
    )


def _units_wanted(opened: Mapping[str, xr.Dataset]) -> dict[str, str]:
    """Per variable, the units of the first source that has it."""
    wanted: dict[str, str] = {}
    for ds in opened.values():
        for name, da in ds.data_vars.items():
            wanted.setdefault(str(name), str(da.attrs.get("units", "")))
    return wanted


def open_sources(data: DataConfig) -> xr.Dataset:
    """The sources of ``data`` as one lazy, canonical dataset on the common grid.

    Steps keep each source's order and are labelled with ``(year, month)`` in the common
    grid source's calendar; the ``source`` coordinate names each step's archive. The
    dataset's ``attrs["sources"]`` describes each source (calendar, grid, units changed,
    missing variables).

    Raises
    ------
    ClimatuneError
        For a source that cannot be read, lacks a mapped variable, has sub-monthly steps
        or units that cannot be converted.
    """
    if not data.sources:
        raise ClimatuneError("data.sources is empty; list at least one source")
    opened = {s.name: open_source(s) for s in data.sources}
    target = target_grid(data.grid, opened)
    check_coverage(opened, target)
    ref = opened[data.grid] if isinstance(data.grid, str) else next(iter(opened.values()))
    calendar = str(ref.time.dt.calendar)
    wanted = _units_wanted(opened)
    asked = set(data.variables or []) | set(data.targets or [])
    if data.variables is not None:  # only these: another field one source lacks is no news
        wanted = {n: u for n, u in wanted.items() if n in asked}
    names = list(wanted)
    parts, info = [], {}
    first = data.sources[0].name
    for source in data.sources:
        ds = opened[source.name]
        own_calendar = str(ds.time.dt.calendar)
        if is_sub_annual(ds.time) != is_sub_annual(opened[first].time):
            # a step would mean a month in one source and a year in another, and annual
            # means would enter the climatology of their label's month
            raise ClimatuneError(
                f"source '{source.name}' has steps of {step_unit(ds.time)} but source "
                f"'{first}' of {step_unit(opened[first].time)}; sources must share their "
                "time step: resample one of them first"
            )
        grid = [int(ds.lat.size), int(ds.lon.size)]
        ds, changes = to_units(ds, wanted, f"source '{data.sources[0].name}'")
        for line in changes:  # reported like every conversion (DESIGN: units)
            _log.warning("note: source %s: units converted: %s", source.name, line)
        ds = _relabel(_regrid(ds, target, source), calendar, source.name)
        lacking = [n for n in names if n not in ds.data_vars]
        if lacking:
            _log.warning(
                "note: source %s lacks %s: fed as missing (all NaN: valid fraction 0, "
                "no loss there)%s",
                source.name,
                ", ".join(lacking),
                _same_quantity(opened, source.name, lacking, names),
            )
        template = ds[next(iter(ds.data_vars))]
        for n in lacking:
            ds[n] = xr.full_like(template, np.nan, dtype=np.float32).assign_attrs(
                units=wanted[n], missing_in_source=source.name
            )
        ds = ds[names].assign_coords({SOURCE: ("time", np.full(ds.time.size, source.name))})
        parts.append(ds)
        info[source.name] = {
            "calendar": own_calendar,
            "grid": grid,
            "weight": source.weight,
            "units_converted": changes,
            "missing": lacking,
        }
    out = xr.concat(parts, dim="time", data_vars="all", coords="minimal", join="exact")
    out.attrs = {"sources": info, "calendar_labels": calendar}
    for n in names:
        out[n].attrs["units"] = wanted[n]
        out[n].encoding["source"] = "data.sources"
    return out


def source_segments(labels: np.ndarray) -> list[tuple[str, int, int]]:
    """``(source, start, stop)`` of each run of equal labels along the time axis."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return []
    cuts = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate([[0], cuts])
    stops = np.concatenate([cuts, [labels.size]])
    return [(str(labels[a]), int(a), int(b)) for a, b in zip(starts, stops)]


def mixing_probabilities(labels: np.ndarray, weights: Mapping[str, float]) -> np.ndarray:
    """Per sample, the probability of drawing it so that each source's share of the draws
    is its weight over the weights of the sources present.

    Examples
    --------
    >>> p = mixing_probabilities(np.array(["a", "a", "a", "b"]), {"a": 1.0, "b": 1.0})
    >>> p.round(3).tolist()
    [0.167, 0.167, 0.167, 0.5]
    """
    labels = np.asarray(labels).astype(str)
    names, counts = np.unique(labels, return_counts=True)
    share = np.array([float(weights.get(n, 1.0)) for n in names])
    share = share / share.max()  # weights of 1e308 sum to inf: scale them first
    share = share / share.sum()
    per = dict(zip(names, share / counts))
    return np.array([per[x] for x in labels])


def describe_sources(data: DataConfig) -> dict[str, Any]:
    """Every source (grid, calendar, years, gaps, variables, units) and the common grid."""
    assert data.sources
    rows: list[dict[str, Any]] = []
    opened = {}
    for source in data.sources:
        ds = open_source(source)
        opened[source.name] = ds
        years = ds.time.dt.year.values
        rows.append(
            {
                "source": source.name,
                "path": str(source.path),
                "calendar": str(ds.time.dt.calendar),
                "years": [int(years.min()), int(years.max())],
                "n_times": int(ds.time.size),
                "gaps": gaps(ds.time),
                "grid": [int(ds.lat.size), int(ds.lon.size)],
                "lat_range": [float(ds.lat.min()), float(ds.lat.max())],
                "lon_range": [float(ds.lon.min()), float(ds.lon.max())],
                "weight": source.weight,
                "variables": {
                    str(n): str(v.attrs.get("units", "")) for n, v in ds.data_vars.items()
                },
                "regrid": source.regrid,
            }
        )
    target = target_grid(data.grid, opened)
    names = list(_units_wanted(opened))
    if data.variables is not None:  # as open_sources: a field nobody asked for is no news
        asked = set(data.variables) | set(data.targets or [])
        names = [n for n in names if n in asked]
    for row in rows:
        row["missing"] = [n for n in names if n not in row["variables"]]
    return {
        "sources": rows,
        "grid": {
            "from": data.grid
            if isinstance(data.grid, str)
            else ("explicit" if data.grid is not None else data.sources[0].name),
            "nlat": int(target.lat.size),
            "nlon": int(target.lon.size),
            "lat_range": [float(target.lat.min()), float(target.lat.max())],
            "lon_range": [float(target.lon.min()), float(target.lon.max())],
        },
        "normalization": data.source_normalization,
    }


def grid_spec(lat: Any, lon: Any) -> dict[str, list[float]] | None:
    """``data.grid`` (``{lat: [first, last, step], lon: [...]}``) of regular axes, or None.

    Examples
    --------
    >>> grid_spec([-10.0, 0.0, 10.0], [350.0, 0.0, 10.0])
    {'lat': [-10.0, 10.0, 10.0], 'lon': [-10.0, 10.0, 10.0]}
    """
    out = {}
    for name, axis in (("lat", np.asarray(lat, float)), ("lon", np.asarray(lon, float))):
        if name == "lon":  # contiguous across 0° (a regional grid) or from 0° (global)
            axis = np.unwrap(axis, period=360.0)
            axis = axis - 360.0 if axis[0] >= 180.0 and not is_global(axis) else axis
        steps = np.diff(axis)
        if axis.size < 2 or steps.min() <= 0 or not np.allclose(steps, steps[0], atol=1e-4):
            return None
        out[name] = [round(float(axis[0]), 6), round(float(axis[-1]), 6), round(float(steps[0]), 6)]
    return out


def other_archive(data: dict[str, Any], set_keys: set[str], grid: Mapping[str, Any]) -> list[str]:
    """Point a multi-source model's stored ``data`` section (a raw dict, edited in place) at
    the archive the user named with ``--set``, and say how it is read.

    ``set_keys`` are the ``--set`` keys; ``grid`` the model's own (``lat``, ``lon``).
    ``data.path`` alone replaces the stored ``data.sources`` (and their ``grid`` and
    ``source_normalization``): the file is read on its own grid. New ``data.sources``
    without ``data.grid`` are read on the model's own grid, which the stored
    ``data.grid`` (a source's name, or the first source's by default) stood for, unless
    they still list that source.
    Returns the notes.
    """
    if not data.get("sources"):
        return []
    if "data.path" in set_keys and "data.sources" not in set_keys:
        names = [str(s.get("name")) for s in data["sources"] if isinstance(s, dict)]
        data.pop("sources")
        for key in ("grid", "source_normalization"):
            if f"data.{key}" not in set_keys:
                data.pop(key, None)
        return [
            f"note: data.path replaces the model's data.sources ({', '.join(names)}), and "
            "their data.grid and data.source_normalization"
        ]
    if "data.sources" not in set_keys or "data.grid" in set_keys:
        return []
    listed = [s.get("name") for s in data["sources"] if isinstance(s, dict)]
    stored = data.get("grid")
    if isinstance(stored, dict) or (stored is not None and stored in listed):
        return []  # an explicit grid, or the grid of a source still listed
    spec = grid_spec(grid["lat"], grid["lon"])
    size = f"{len(grid['lat'])}x{len(grid['lon'])}"
    if spec is None:
        data["grid"] = None
        return [
            f"note: data.grid {stored or 'by default'} named a source no longer listed, and the "
            f"model's {size} grid is not regular: read on the first source's grid; set data.grid"
        ]
    data["grid"] = spec
    return [
        f"note: data.sources replaced: read on the model's own {size} grid "
        f"(lat {spec['lat'][0]:g}..{spec['lat'][1]:g}, lon {spec['lon'][0]:g}..{spec['lon'][1]:g}), "
        "which the model's data.grid "
        f"{repr(stored) if stored else '(its first source)'} stood for; set data.grid to choose another"
    ]


def _step(axis: Any) -> float:
    values = np.asarray(axis, float)
    return float(np.median(np.abs(np.diff(values)))) if values.size > 1 else float("nan")


def grid_note(grid: Mapping[str, Any], fields: xr.Dataset) -> str | None:
    """A note when a model trained on ``data.sources`` regridded to ``grid`` (its ``lat``
    and ``lon``) reads ``fields`` at another resolution, or None (the same resolution: its
    grid or a crop of it)."""
    trained = (_step(grid["lat"]), _step(grid["lon"]))
    here = (_step(fields.lat.values), _step(fields.lon.values))
    if np.allclose(trained, here, rtol=1e-3, equal_nan=True):
        return None
    spec = grid_spec(grid["lat"], grid["lon"])
    how = (
        f" and data.grid {{lat: {spec['lat']}, lon: {spec['lon']}}}"
        if spec is not None
        else " and data.grid"
    )
    return (
        f"note: the model was trained on data.sources regridded to its "
        f"{trained[0]:g}x{trained[1]:g}° grid ({len(grid['lat'])}x{len(grid['lon'])}); "
        f"this data is read on its own {here[0]:g}x{here[1]:g}° grid ({fields.lat.size}x"
        f"{fields.lon.size}): to read it as the model was trained, list it in data.sources{how}"
    )


def require_one_source(data: DataConfig, command: str) -> None:
    """Refuse several ``data.sources`` for a command that scores the test (or validation)
    steps: the sources' steps share their (year, month) labels, so one truth cannot hold
    them (it failed deep in the metrics with a pandas traceback).

    Raises
    ------
    ClimatuneError
        When ``data.sources`` lists more than one source.
    """
    if data.sources and len(data.sources) > 1:
        raise ClimatuneError(
            f"{command} scores one archive at a time, and data.sources lists "
            f"{len(data.sources)} ({', '.join(s.name for s in data.sources)}): keep one "
            "(one data.sources entry, or data.path)"
        )
