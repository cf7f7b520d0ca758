"""Select variables, pressure levels and years from a canonical dataset, and sanity-check it.

Every function raises :class:`~climatune.errors.ClimatuneError` with what is available
when a request cannot be met, so a config typo ends in one line that says how to fix it.

Examples
--------
>>> from climatune.data.io import open_dataset
>>> from climatune.data.selection import select
>>> ds = select(open_dataset("sample://A1B_north_america"), years=(1950, 1999))
>>> ds.sizes["time"]
50
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

import dask
import numpy as np
import xarray as xr

from climatune.data.io import reading
from climatune.data.units import levels_in_hpa
from climatune.errors import ClimatuneError, closest

_log = logging.getLogger("climatune")

__all__ = [
    "require_variables",
    "select",
    "level_name",
    "check_not_all_nan",
    "empty_variables",
    "check_finite",
    "without_fill",
    "FILL_THRESHOLD",
]


def _numeric(ds: xr.Dataset) -> list[str]:
    return [str(n) for n, da in ds.data_vars.items() if da.dtype.kind in "biufc"]


def require_variables(ds: xr.Dataset, names: Iterable[str]) -> None:
    """Raise unless every name in ``names`` is a data variable of ``ds``.

    Examples
    --------
    >>> import xarray as xr
    >>> require_variables(xr.Dataset({"tas": 1.0, "pr": 2.0}), ["sst"])
    Traceback (most recent call last):
    ...
    climatune.errors.ClimatuneError: variable 'sst' missing; the file has: tas, pr
    """
    have = [str(n) for n in ds.data_vars]
    missing = list(dict.fromkeys(n for n in names if n not in ds.data_vars))
    if not missing:
        return
    listed = ", ".join(have) or "no variables"
    if len(missing) == 1:
        raise ClimatuneError(
            f"variable '{missing[0]}' missing{closest(missing[0], have)}; the file has: {listed}"
        )
    names_text = ", ".join(f"'{n}'" for n in missing)
    raise ClimatuneError(f"variables {names_text} missing; the file has: {listed}")


def level_name(variable: str, level: float) -> str:
    """Name of one level of a variable, WeatherBench style: ``level_name("z", 500) == "z500"``."""
    value = float(level)
    return f"{variable}{int(value) if value.is_integer() else f'{value:g}'}"


def _level_index(ds: xr.Dataset, var: str, wanted: Sequence[float]) -> list[int]:
    available = np.asarray(ds["level"].values, dtype=float)
    units = ds["level"].attrs.get("units", "")
    index = []
    for level in wanted:
        hits = np.nonzero(np.isclose(available, float(level), rtol=1e-6, atol=1e-9))[0]
        if not hits.size:
            shown = ", ".join(f"{v:g}" for v in available)
            raise ClimatuneError(
                f"level {float(level):g} of '{var}' is not in the file; available levels: "
                f"{shown}{' ' + units if units else ''}"
            )
        index.append(int(hits[0]))
    return index


def _select_levels(ds: xr.Dataset, levels: Mapping[str, Sequence[float]]) -> xr.Dataset:
    """Split each listed variable into one (time, lat, lon) field per level, e.g. z500."""
    for var, wanted in levels.items():
        if var not in ds.data_vars:
            raise ClimatuneError(
                f"levels are given for '{var}', which is not among the selected variables "
                f"({', '.join(map(str, ds.data_vars))}); add it to the variables or drop it "
                "from the levels"
            )
        if "level" not in ds[var].dims:
            raise ClimatuneError(
                f"variable '{var}' has no level dimension; remove it from the levels"
            )
        if isinstance(wanted, (int, float)) or not len(wanted):
            raise ClimatuneError(
                f"levels for '{var}' must be a non-empty list, e.g. {{'{var}': [500, 850]}}"
            )
        fields = {}
        for i in _level_index(ds, var, wanted):
            value = float(ds["level"].values[i])
            name = level_name(var, value)
            if name in ds.variables and name != var:
                raise ClimatuneError(
                    f"cannot name level {value:g} of '{var}' '{name}': the file already has a "
                    f"variable '{name}'; rename one of them"
                )
            field = ds[var].isel(level=i, drop=True)
            field.attrs = {
                **ds[var].attrs,
                "level": value,
                "level_units": ds["level"].attrs.get("units", ""),
            }
            fields[name] = field
        ds = ds.drop_vars(var).assign(fields)
    if "level" in ds.dims and not any("level" in da.dims for da in ds.data_vars.values()):
        ds = ds.drop_dims("level")
    return ds


def _select_years(ds: xr.Dataset, years: Sequence[int]) -> xr.Dataset:
    if "time" not in ds.dims:
        raise ClimatuneError("years are given but the data has no time dimension; drop 'years'")
    if len(years) != 2:
        raise ClimatuneError(f"years must be (first, last), got {list(years)}")
    first, last = int(years[0]), int(years[1])
    if first > last:
        raise ClimatuneError(f"years ({first}, {last}) are reversed; use ({last}, {first})")
    year = ds["time"].dt.year.values
    keep = np.nonzero((year >= first) & (year <= last))[0]
    if not keep.size:
        span = f"{year.min()}-{year.max()}" if year.size else "no times"
        raise ClimatuneError(f"no times in the years {first}-{last}; the file covers {span}")
    return ds.isel(time=keep)


def select(
    ds: xr.Dataset,
    variables: Sequence[str] | None = None,
    levels: Mapping[str, Sequence[float]] | None = None,
    years: Sequence[int] | None = None,
) -> xr.Dataset:
    """Subset a canonical dataset by variables, levels and an inclusive range of years.

    Parameters
    ----------
    ds
        A dataset from :func:`~climatune.data.io.open_dataset`.
    variables
        Variables to keep (default: all).
    levels
        ``{var: [500, 850]}``, in hPa for pressure levels (a pressure ``level``
        coordinate in Pa or mbar is always converted to hPa, with a note): each listed
        variable becomes one 2-D field per level, named
        like WeatherBench (``z500``, ``z850``), so that variables may use different levels.
        Variables not listed keep their ``level`` dim.
    years
        ``(first, last)``, both included, on the calendar year of ``time``.
    """
    if variables is not None:
        if isinstance(variables, str):
            variables = [variables]
        require_variables(ds, variables)
        ds = ds[list(dict.fromkeys(variables))]
    if years is not None:
        ds = _select_years(ds, years)
    ds = levels_in_hpa(ds)
    if levels:
        ds = _select_levels(ds, levels)
    return ds


def empty_variables(ds: xr.Dataset) -> list[str]:
    """The numeric variables of ``ds`` that are NaN everywhere (one lazy Dask pass)."""
    names = _numeric(ds)
    if not names:
        return []
    with reading(ds[names]):
        has_value = ds[names].notnull().any().compute()
    return [n for n in names if not bool(has_value[n])]


def check_not_all_nan(ds: xr.Dataset) -> None:
    """Raise if any variable is NaN everywhere (one lazy Dask pass over all variables)."""
    empty = empty_variables(ds)
    if empty:
        raise ClimatuneError(
            f"variable '{empty[0]}' is entirely NaN"
            + (f" (so are {', '.join(empty[1:])})" if len(empty) > 1 else "")
            + "; check the file, its years and region, and its _FillValue/missing_value"
        )


# Fill values stored as data, without a _FillValue or missing_value attribute to decode
# them: 1e20 (CMIP/CMOR), 9.96921e36 (the NetCDF default), 3.4e38 (float32 max), 1e30 and
# 1e35 (older models). No gridded climate field comes near 1e15 in its usual units
# (geopotential ~1e5 m2 s-2, pressure ~1e5 Pa, column ocean heat content ~1e11 J m-2), so
# anything at or beyond it is a sentinel, five orders below the smallest common one.
FILL_THRESHOLD = 1e15


def check_finite(ds: xr.Dataset) -> xr.Dataset:
    """Refuse +inf and -inf; return ``ds`` with fill sentinels masked as missing (NaN).

    NaN is allowed: it marks missing cells. Values with ``|x| >= FILL_THRESHOLD`` are fill
    values the file did not declare; they become NaN too, with a note on the
    ``climatune`` logger, so that they are never trained on or scored. One Dask pass.
    """
    names = [n for n in _numeric(ds) if ds[n].dtype.kind in "fc"]
    if not names:
        return ds
    with reading(ds[names]):
        infinite, huge = dask.compute(
            np.isinf(ds[names]).sum(), (abs(ds[names]) >= FILL_THRESHOLD).sum()
        )
    bad = {n: int(infinite[n]) for n in names if int(infinite[n])}
    if bad:
        shown = ", ".join(f"'{n}' ({c} values)" for n, c in bad.items())
        raise ClimatuneError(
            f"infinite values in {shown}; replace them with NaN, e.g. "
            "ds.where(np.isfinite(ds)), or fix the file"
        )
    filled = {n: int(huge[n]) for n in names if int(huge[n])}
    if not filled:
        return ds
    shown = ", ".join(f"'{n}' ({c} values)" for n, c in filled.items())
    _log.warning(
        "note: %s hold fill values (|x| >= %g) that the file does not declare as "
        "_FillValue or missing_value; they are treated as missing",
        shown,
        FILL_THRESHOLD,
    )
    return without_fill(ds, filled)


def without_fill(ds: xr.Dataset, names: Iterable[str] | None = None) -> xr.Dataset:
    """``ds`` with values at or beyond :data:`FILL_THRESHOLD` set to NaN (lazily)."""
    names = [n for n in _numeric(ds) if ds[n].dtype.kind in "fc"] if names is None else names
    masked = {n: ds[n].where(abs(ds[n]) < FILL_THRESHOLD) for n in names}
    for n, da in masked.items():
        da.encoding = dict(ds[n].encoding)  # keeps the source file, named in read errors
    return ds.assign(masked)
