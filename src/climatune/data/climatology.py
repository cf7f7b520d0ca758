"""Training-period climatology: the centre of anomaly normalisation, the reference of skill.

The calendar unit is read from the time axis: data with several steps in a year
(monthly, daily) get one mean per calendar month, annual data a single mean. Works
with any cftime calendar (``360_day``, ``noleap``, ...).
"""

from __future__ import annotations

import warnings
from typing import TypeVar

import numpy as np
import xarray as xr

from climatune.errors import ClimatuneError

__all__ = ["is_sub_annual", "step_unit", "climatology", "climatology_at"]

T = TypeVar("T", xr.Dataset, xr.DataArray)


def is_sub_annual(time: xr.DataArray) -> bool:
    """True when some calendar year holds more than one step (monthly, daily, ... data)."""
    years = np.asarray(time.dt.year)
    return np.unique(years).size < years.size


def step_unit(time: xr.DataArray) -> str:
    """The time step of ``time`` in words, from the steps in its fullest calendar year:
    ``"years"``, ``"months"``, ``"days"`` or, for any other spacing, ``"time steps"``.

    >>> import pandas as pd
    >>> step_unit(xr.DataArray(pd.date_range("2000-01-01", periods=24, freq="MS"), dims="time"))
    'months'
    """
    if time.size < 2:
        return "time steps"
    per_year = int(np.unique(np.asarray(time.dt.year), return_counts=True)[1].max())
    units = {1: "years", 12: "months", 360: "days", 365: "days", 366: "days"}
    return units.get(per_year, "time steps")


def climatology(train: T) -> T:
    """Training-period mean per calendar month (sub-annual data) or overall (annual data).

    Parameters
    ----------
    train
        Fields or series with a ``time`` dimension, restricted to the training period.

    Returns
    -------
    The mean with a ``month`` dimension (only the months present) or without a time
    dimension. Cells that are NaN at every training step stay NaN.
    """
    if "time" not in train.dims or train.sizes["time"] == 0:
        raise ClimatuneError("a climatology needs training data with a non-empty time axis")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells (land) stay NaN
        if is_sub_annual(train.time):
            clim = train.groupby("time.month").mean("time", keep_attrs=True)
        else:
            clim = train.mean("time", keep_attrs=True)
    return clim.drop_vars([c for c in clim.coords if "time" in clim[c].dims], errors="ignore")


def climatology_at(clim: T, times: xr.DataArray | np.ndarray) -> T:
    """The climatology ``clim`` (from :func:`climatology`) repeated at ``times``.

    Raises a ClimatuneError if a calendar month of ``times`` had no training data, rather
    than leaving it NaN.
    """
    if isinstance(times, xr.DataArray):
        axis = times.rename("time")
    else:
        values = np.asarray(times)
        axis = xr.DataArray(values, dims="time", coords={"time": values}, name="time")
    if "month" in clim.dims:
        months = axis.dt.month
        missing = sorted(set(np.asarray(months).tolist()) - set(clim.month.values.tolist()))
        if missing:
            raise ClimatuneError(
                f"the training period has no data for calendar month(s) {missing}; "
                "extend the train block so that it covers every month"
            )
        out = clim.sel(month=months.drop_vars("time")).drop_vars("month")
    else:
        out = clim.expand_dims(time=axis.size)
    out = out.assign_coords(time=axis.values)
    out["time"].attrs = axis.attrs
    return out.transpose("time", ...)
