"""Tiny seeded climate data and task views for the metric and baseline tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import xarray as xr

from climatune.data.view import TaskView


def _time_axis(n: int, *, monthly: bool, calendar: str = "360_day") -> xr.DataArray:
    """``n`` cftime steps: month starts from 2000-01, or one per year at 1 July."""
    if monthly:
        index = xr.date_range(
            "2000-01-01", periods=n, freq="MS", calendar=calendar, use_cftime=True
        )
    else:
        index = xr.date_range(
            "2000-07-01", periods=n, freq="YS-JUL", calendar=calendar, use_cftime=True
        )
    return xr.DataArray(index, dims="time", coords={"time": index}, name="time")


def _make_fields(
    values: dict[str, np.ndarray], time: xr.DataArray, lat: np.ndarray, lon: np.ndarray
) -> xr.Dataset:
    """A canonical ``(time, lat, lon)`` Dataset in kelvin from raw arrays."""
    coords = {"time": time.values, "lat": np.asarray(lat, float), "lon": np.asarray(lon, float)}
    return xr.Dataset(
        {
            n: (("time", "lat", "lon"), np.asarray(v, float), {"units": "K"})
            for n, v in values.items()
        },
        coords=coords,
    )


def _make_view(
    kind: str,
    fields: xr.Dataset,
    *,
    blocks: dict[str, tuple[int, int]],
    inputs: list[str] | None = None,
    targets: list[str] | None = None,
    history: int = 1,
    lead: int = 0,
    factor: int = 1,
    index: xr.DataArray | None = None,
    region_mask: xr.DataArray | None = None,
) -> TaskView:
    """A TaskView whose ``blocks`` are inclusive time-step ranges; anchors keep every
    sample's inputs and target inside its block, as ``climatune.data.splits`` does."""
    inputs = inputs or list(fields.data_vars)
    targets = targets or ([index.name] if kind == "index" else inputs)
    anchors = {
        name: np.arange(first + history - 1, last - lead + 1)
        for name, (first, last) in blocks.items()
    }
    mask = (
        region_mask
        if region_mask is not None
        else xr.ones_like(fields.lat * fields.lon, dtype=bool)
    )
    return TaskView(
        kind=kind,
        fields=fields,
        inputs=inputs,
        targets=targets,
        history=history,
        lead=lead,
        factor=factor,
        anchors=anchors,
        region_mask=mask,
        index=index,
    )


@pytest.fixture
def time_axis() -> Callable[..., xr.DataArray]:
    return _time_axis


@pytest.fixture
def make_fields() -> Callable[..., xr.Dataset]:
    return _make_fields


@pytest.fixture
def make_view() -> Callable[..., TaskView]:
    return _make_view


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


@pytest.fixture
def annual_view(rng: np.random.Generator) -> Callable[[str], TaskView]:
    """Factory: a 30-year annual (noleap) view of ``tas`` (land NaN cell) and ``psl`` on a
    4×4 grid, split 0-19 / 21-24 / 26-29, for any task kind."""

    def build(kind: str) -> TaskView:
        n, lat, lon = 30, np.array([-30.0, 0.0, 30.0, 60.0]), np.array([0.0, 90.0, 180.0, 270.0])
        time = _time_axis(n, monthly=False, calendar="noleap")
        tas = 280 + rng.normal(size=(n, 4, 4))
        tas[:, 0, 0] = np.nan
        ds = _make_fields({"tas": tas, "psl": 1000 + rng.normal(size=(n, 4, 4))}, time, lat, lon)
        kw: dict = {"factor": 2} if kind == "downscale" else {}
        if kind in ("forecast", "index"):
            kw |= {"history": 2, "lead": 1}
        if kind == "index":
            kw["index"] = xr.DataArray(
                rng.normal(size=n), coords={"time": time.values}, dims="time", name="nino34"
            )
        return _make_view(
            kind, ds, blocks={"train": (0, 19), "val": (21, 24), "test": (26, 29)}, **kw
        )

    return build
