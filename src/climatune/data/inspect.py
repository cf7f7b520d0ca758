"""Describe data sources: one row per variable with its grid, levels, time axis and NaNs.

This is what ``climatune data inspect PATH... [--json]`` prints. Sources are opened with
:func:`~climatune.data.io.open_dataset`, so the rows describe the canonical form the rest of
ClimaTune sees (latitude ascending; longitude in [0, 360) on global grids, contiguous on
regional ones, e.g. -80..40 for a box across 0°).

Examples
--------
>>> from climatune.data.inspect import inspect_paths
>>> row = inspect_paths(["sample://A1B_north_america"])[0]
>>> row["variable"], row["units"], row["n_times"], row["calendar"]
('air_temperature', 'K', 240, '360_day')
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
from rich import box
from rich.console import Console
from rich.table import Table

from climatune.data.io import open_dataset
from climatune.data.splits import time_runs

__all__ = ["inspect_paths", "inspect_dataset", "format_table", "format_sources"]


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _number(value: Any) -> float | int:
    value = float(value)
    return int(value) if value.is_integer() else round(value, 6)


def _step(values: np.ndarray) -> float | None:
    """Median spacing, in the coordinate's units (degrees for lat/lon)."""
    return _number(np.median(np.abs(np.diff(values)))) if values.size > 1 else None


def _grid(ds: xr.Dataset) -> dict[str, Any]:
    lat, lon = ds["lat"].values.astype(float), ds["lon"].values.astype(float)
    return {
        "nlat": int(lat.size),
        "nlon": int(lon.size),
        "dlat": _step(lat),
        "dlon": _step(lon),
        "lat_range": [_number(lat.min()), _number(lat.max())],
        "lon_range": [_number(lon.min()), _number(lon.max())],
    }


def _time(ds: xr.Dataset) -> dict[str, Any]:
    if "time" not in ds.dims or not ds.sizes["time"]:
        return {
            "time_first": None,
            "time_last": None,
            "n_times": 0,
            "frequency": None,
            "calendar": None,
        }
    times = ds["time"].values
    try:
        freq = xr.infer_freq(ds["time"]) if times.size >= 3 else None
    except (ValueError, TypeError):
        freq = None
    return {
        "time_first": _iso(times[0]),
        "time_last": _iso(times[-1]),
        "n_times": int(times.size),
        "gaps": gaps(ds["time"]),
        "frequency": freq,
        "calendar": str(ds["time"].encoding.get("calendar") or ds["time"].dt.calendar),
    }


def inspect_dataset(ds: xr.Dataset, source: str) -> list[dict[str, Any]]:
    """Describe each variable of a canonical dataset; NaN fractions come from one Dask pass."""
    nan_fraction = ds.isnull().mean().compute()
    grid = _grid(ds) if "lat" in ds.dims and "lon" in ds.dims else None
    time = _time(ds)
    rows = []
    for name, da in ds.data_vars.items():
        levels = None
        if "level" in da.dims:
            levels = [_number(v) for v in ds["level"].values]
        on_time = "time" in da.dims
        rows.append(
            {
                "source": source,
                "variable": str(name),
                "units": da.attrs.get("units"),
                "standard_name": da.attrs.get("standard_name"),
                "long_name": da.attrs.get("long_name"),
                "dims": [str(d) for d in da.dims],
                "grid": grid if "lat" in da.dims else None,
                "levels": levels,
                "level_units": ds["level"].attrs.get("units") if levels else None,
                **(time if on_time else dict.fromkeys(time, None)),
                "nan_fraction": round(float(nan_fraction[name]), 6),
            }
        )
    return rows


def inspect_paths(paths: Sequence[str]) -> list[dict[str, Any]]:
    """Open each source (file, glob, Zarr store or ``sample://NAME``) and describe its variables.

    Returns JSON-ready rows: ``source, variable, units, standard_name, long_name, dims, grid
    (nlat, nlon, dlat, dlon, lat_range, lon_range), levels, level_units, time_first,
    time_last, n_times, frequency, calendar, nan_fraction``.
    """
    rows: list[dict[str, Any]] = []
    for source in paths:
        rows.extend(inspect_dataset(open_dataset(source), str(source)))
    return rows


def _grid_text(grid: dict[str, Any] | None) -> str:
    if grid is None:
        return "-"
    text = f"{grid['nlat']}x{grid['nlon']}"
    if grid["dlat"] is not None and grid["dlon"] is not None:
        text += f" @ {grid['dlat']:.4g}x{grid['dlon']:.4g}°"
    (lat0, lat1), (lon0, lon1) = grid["lat_range"], grid["lon_range"]
    return f"{text}, lat {lat0:.4g}..{lat1:.4g}, lon {lon0:.4g}..{lon1:.4g}"


def _time_text(row: dict[str, Any]) -> str:
    if not row.get("n_times"):
        return "-"
    freq = f" ({row['frequency']})" if row.get("frequency") else ""
    return (
        f"{row['time_first'][:10]}..{row['time_last'][:10]}, "
        f"{row['n_times']} steps{freq}{_gaps_text(row)}, {row['calendar']}"
    )


def _gaps_text(row: dict[str, Any]) -> str:
    n = int(row.get("gaps") or 0)
    return f", {n} gap{'s' if n > 1 else ''}" if n else ""


def gaps(time: xr.DataArray) -> int:
    """How many holes (or irregular stamps) break a time axis into runs of regular steps
    (:func:`~climatune.data.splits.time_runs`); 0 for a sorted, regular axis."""
    if time.size < 2:
        return 0
    try:
        return int(time_runs(time).max())
    except (TypeError, ValueError):  # an axis time_runs cannot read: no claim
        return 0


def _levels_text(row: dict[str, Any]) -> str:
    if not row.get("levels"):
        return "-"
    units = f" {row['level_units']}" if row.get("level_units") else ""
    return ",".join(f"{v:g}" for v in row["levels"]) + units


def _console(buffer: io.StringIO, width: int | None) -> Console:
    width = width or max(80, shutil.get_terminal_size((120, 24)).columns)
    return Console(
        file=buffer,
        width=width,
        color_system=None,
        force_terminal=False,
        legacy_windows=False,
        emoji=False,
        highlight=False,
    )


def _span(values: Sequence[float]) -> str:
    return f"{_number(values[0])}..{_number(values[1])}"


def format_sources(desc: dict[str, Any], *, width: int | None = None) -> str:
    """Render :func:`~climatune.data.sources.describe_sources` as plain text: one row per
    source (grid, calendar, years, variables with units, missing ones) and the common grid."""
    buffer = io.StringIO()
    console = _console(buffer, width)
    table = Table(title="sources", title_justify="left", box=box.SIMPLE_HEAD, header_style="bold")
    for column in (
        "source",
        "grid",
        "calendar",
        "years",
        "variables (units)",
        "missing",
        "weight",
        "regrid",
    ):
        table.add_column(column, overflow="fold")
    for row in desc["sources"]:
        regrid = row["regrid"]
        table.add_row(
            row["source"],
            f"{row['grid'][0]}x{row['grid'][1]} lat {_span(row['lat_range'])} lon {_span(row['lon_range'])}",
            row["calendar"],
            f"{row['years'][0]}-{row['years'][1]} ({row['n_times']} steps{_gaps_text(row)})",
            ", ".join(f"{k} ({v or '-'})" for k, v in row["variables"].items()),
            ", ".join(row["missing"]) or "-",
            f"{row['weight']:g}",
            regrid
            if isinstance(regrid, str)
            else ", ".join(f"{k}: {v}" for k, v in regrid.items()),
        )
    console.print(table)
    grid = desc["grid"]
    console.print(
        f"common grid ({grid['from']}): {grid['nlat']}x{grid['nlon']}, lat "
        f"{_span(grid['lat_range'])}, lon {_span(grid['lon_range'])}; steps aligned on "
        f"(year, month); statistics {desc['normalization']}"
    )
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()).strip("\n")


def format_table(rows: Sequence[dict[str, Any]], *, width: int | None = None) -> str:
    """Render :func:`inspect_paths` rows as plain text, one table per source (no terminal needed)."""
    if not rows:
        return "no variables found"
    buffer = io.StringIO()
    console = _console(buffer, width)
    for source in dict.fromkeys(row["source"] for row in rows):
        table = Table(
            title=str(source),
            title_justify="left",
            box=box.SIMPLE_HEAD,
            header_style="bold",
            pad_edge=False,
        )
        for column in ("variable", "units", "dims", "grid", "levels", "time", "NaN %"):
            table.add_column(
                column,
                justify="right" if column == "NaN %" else "left",
                no_wrap=column == "NaN %",
                overflow="fold",
            )
        for row in (r for r in rows if r["source"] == source):
            table.add_row(
                str(row["variable"]),
                str(row.get("units") or "-"),
                ",".join(row["dims"]),
                _grid_text(row.get("grid")),
                _levels_text(row),
                _time_text(row),
                f"{100 * row['nan_fraction']:.1f}",
            )
        console.print(table)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()).strip("\n")
