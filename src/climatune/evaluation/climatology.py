"""Training-period climatology of a task view: the reference of ACC and skill, and a baseline.

The computation lives in :mod:`climatune.data.climatology` (anomaly normalisation uses it
too); it is re-exported here for the evaluation code.
"""

from __future__ import annotations

import xarray as xr

from climatune.data.climatology import climatology, climatology_at, is_sub_annual
from climatune.data.view import TaskView

__all__ = [
    "is_sub_annual",
    "climatology",
    "climatology_at",
    "view_climatology",
]


def view_climatology(view: TaskView) -> xr.Dataset:
    """Climatology of the targets over the training period of ``view``.

    The reference for ACC and skill; the ``climatology`` baseline predicts exactly this,
    so its skill is 0.
    """
    return climatology(view.target_data().isel(time=view.steps("train")))
