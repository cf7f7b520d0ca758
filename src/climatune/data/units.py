"""Units: convert a dataset's variables and pressure levels to the units a model wants.

Units are read the CF way, by cf-xarray's pint registry (``degC``, ``kg m-2 s-1``,
``hPa``), and converted with pint-xarray. A conversion is lazy (one more step in the Dask
graph) and exact in float64: °C to K adds 273.15. Compatible units are converted and the
conversion is reported (``sst: degC -> K``); incompatible or missing units are an error.

Examples
--------
>>> import xarray as xr
>>> ds = xr.Dataset({"sst": ("x", [20.0, -1.5], {"units": "degC"})})
>>> out, changes = to_units(ds, {"sst": "K"}, "the model")
>>> changes, out.sst.values.tolist(), out.sst.attrs["units"]
(['sst: degC -> K'], [293.15, 271.65], 'K')
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pint
import pint_xarray  # noqa: F401  (the .pint accessor)
import xarray as xr
from cf_xarray.units import units as CF_UNITS

from climatune.errors import ClimatuneError

_log = logging.getLogger("climatune")

__all__ = ["convert", "to_units", "levels_in_hpa", "LEVEL_UNITS"]

LEVEL_UNITS = "hPa"  # the units of pressure levels in data.levels and in variable names


def _parse(text: str) -> pint.Unit | None:
    """The CF units ``text``, or None when the registry does not know them."""
    try:
        return CF_UNITS.parse_units(text)
    except Exception:  # pint's parser raises many kinds on malformed text
        return None


def _unit(text: str, what: str) -> pint.Unit:
    unit = _parse(text)
    if unit is None:
        raise ClimatuneError(
            f"{what} has units {text!r}, which are not understood; set its units attribute "
            "to CF units (e.g. 'K', 'degC', 'hPa')"
        )
    return unit


def convert(da: xr.DataArray, units: str) -> xr.DataArray:
    """``da`` (which has a ``units`` attribute) in ``units``: lazy, in float64.

    Coordinates, attributes and encoding are kept; the ``units`` attribute becomes
    ``units``. Compatibility is checked by :func:`to_units`.
    """
    bare = xr.DataArray(da.variable.astype(np.float64))
    moved = bare.pint.quantify(da.attrs["units"], unit_registry=CF_UNITS).pint.to(units)
    return da.copy(data=moved.pint.dequantify().data).assign_attrs(units=units)


def to_units(ds: xr.Dataset, wanted: Mapping[str, str], owner: str) -> tuple[xr.Dataset, list[str]]:
    """``ds`` with each variable of ``wanted`` in its wanted units, and the changes made.

    Parameters
    ----------
    ds
        The data; variables of ``wanted`` that it lacks, or wanted without units, are skipped.
    wanted
        ``{variable: units}``, e.g. a model's.
    owner
        Who wants them, for the messages: ``"the model"``.

    Returns
    -------
    ds, changes
        The converted data and one ``"sst: degC -> K"`` line per converted variable.

    Raises
    ------
    ClimatuneError
        When a variable has no units, or units that cannot be converted to the wanted ones.
    """
    changes, converted = [], {}
    for name, want in wanted.items():
        if not want or name not in ds.data_vars:
            continue
        have = str(ds[name].attrs.get("units", "")).strip()
        if not have:
            raise ClimatuneError(
                f"variable '{name}' has no units attribute but {owner} uses {want!r}; set the "
                "attribute to the data's units (e.g. with ncatted)"
            )
        if have == want:
            continue
        if not CF_UNITS.is_compatible_with(_unit(have, f"variable '{name}'"), _unit(want, owner)):
            raise ClimatuneError(
                f"variable '{name}' is in {have!r}, which cannot be converted to the {want!r} "
                f"of {owner}; give the data in {want!r} (or rename the variable if it is a "
                "different quantity)"
            )
        converted[name] = convert(ds[name], want)
        changes.append(f"{name}: {have} -> {want}")
    return ds.assign(converted), changes


def levels_in_hpa(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with a pressure ``level`` coordinate in hPa (Pa, mbar, ... converted).

    A level coordinate without units, or in units that are not a pressure (model levels,
    depth), is left as it is. A conversion is a note on the ``climatune`` logger.
    """
    if "level" not in ds.coords:
        return ds
    have = str(ds["level"].attrs.get("units", "")).strip()
    if not have or have == LEVEL_UNITS:
        return ds
    unit = _parse(have)
    if unit is None or not CF_UNITS.is_compatible_with(unit, LEVEL_UNITS):
        return ds
    level = convert(xr.DataArray(ds["level"].variable.to_base_variable()), LEVEL_UNITS)
    _log.warning("note: pressure levels converted: level: %s -> %s", have, LEVEL_UNITS)
    return ds.assign_coords(level=("level", level.values, level.attrs))
