"""Apply a model to a task view: task, variable and unit checks, static inputs, predictions."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import torch
import xarray as xr
from torch.utils.data import DataLoader

from climatune.data.samples import TaskSamples, static_channels
from climatune.data.view import TaskView
from climatune.errors import ClimatuneError

if TYPE_CHECKING:  # LoadedModel.predict calls predict_view
    from climatune.inference.model import LoadedModel

__all__ = ["predict_view", "check_units", "check_task", "model_view", "static_for"]


def check_units(model: LoadedModel, ds: xr.Dataset, names: list[str]) -> None:
    """Refuse inputs whose units differ from, or are missing against, the model's."""
    trained = model.meta.units("inputs")
    for name in names:
        have = str(ds[name].attrs.get("units", ""))
        want = trained.get(name, "")
        if want and not have:
            raise ClimatuneError(
                f"variable '{name}' has no units attribute but the model was trained on "
                f"{want!r}; set the attribute to the data's units (e.g. with ncatted)"
            )
        if have and want and have != want:
            raise ClimatuneError(
                f"variable '{name}' is in {have!r} but the model expects {want!r}; convert it first"
            )


def check_task(model: LoadedModel, view: TaskView) -> None:
    """Refuse a view whose task is not the one the model was trained for.

    ``--set task.lead=3`` on a lead-1 model would otherwise score it against the wrong
    targets without a word.
    """
    trained = model.meta.data["task"]
    keys = ("kind", "history", "lead", *(("factor",) if view.kind == "downscale" else ()))
    changed = [
        f"task.{k}={getattr(view, k)} (the model: {trained.get(k)})"
        for k in keys
        if trained.get(k) != getattr(view, k)
    ]
    if list(view.targets) != list(model.meta.outputs):
        changed.append(f"targets {view.targets} (the model: {model.meta.outputs})")
    if changed:
        raise ClimatuneError(
            "the data and config describe another task than the model was trained for: "
            f"{'; '.join(changed)}; evaluate the model on its own task"
        )


def model_view(model: LoadedModel, view: TaskView) -> TaskView:
    """``view`` checked against the model (task, input variables, units), in its input order."""
    check_task(model, view)
    missing = [n for n in model.meta.inputs if n not in view.inputs]
    if missing:
        raise ClimatuneError(
            f"the data lacks input variable(s) {missing} that the model needs; it has {view.inputs}"
        )
    check_units(model, view.fields, model.meta.inputs)
    return dataclasses.replace(view, inputs=list(model.meta.inputs))


@torch.no_grad()
def predict_view(
    model: LoadedModel, view: TaskView, split: str, *, batch_size: int = 32
) -> xr.Dataset:
    """Predictions for every sample of ``split``, denormalised and shaped like ``view.truth``.

    A model trained on anomalies gets the climatology of each target's month added back:
    the predictions are full values.

    Cells that are NaN in the input are NaN in the output. The cells of the halo around a
    region are predicted too; the metrics weight them 0 (:meth:`TaskView.weights`).
    """
    view = model_view(model, view)
    samples = TaskSamples(view, split, model.normalizer, mask_ratio=0.0)
    static = static_for(model, view)
    model.net.eval()
    outs = [
        model.forward(batch["fields"], static).float().numpy()
        for batch in DataLoader(samples, batch_size=batch_size)
    ]
    pred = np.concatenate(outs)
    times = view.fields.time.isel(time=view.target_index(view.anchors[split]))
    names = model.meta.outputs
    records = {r["name"]: r for r in model.meta.data["outputs"]}
    data = {}
    months = times.dt.month.values
    for i, name in enumerate(names):
        centre = model.normalizer.centre(name, months, pred.shape[2:])
        values = pred[:, i] * model.normalizer.std_[name] + centre
        attrs = {k: v for k, v in records[name].items() if k != "name" and v}
        if values.ndim == 1:
            data[name] = xr.DataArray(values, coords={"time": times}, dims=["time"], attrs=attrs)
            continue
        da = xr.DataArray(
            values,
            coords={"time": times, "lat": view.fields.lat, "lon": view.fields.lon},
            dims=["time", "lat", "lon"],
            attrs=attrs,
        )
        data[name] = (
            da.where(view.fields[name].isel(time=0).notnull()) if name in view.fields else da
        )
    return xr.Dataset(data)


def _same_axis(a: np.ndarray, b: np.ndarray, *, periodic: bool) -> bool:
    """Whether two coordinate axes hold the same cells in the same order (lon modulo 360)."""
    if a.size != b.size:
        return False
    diff = np.abs(a - b)
    if periodic:
        diff = np.minimum(diff % 360.0, 360.0 - diff % 360.0)
    return bool(np.all(diff <= 1e-4))


def static_for(model: LoadedModel, view: TaskView) -> torch.Tensor:
    """The model's stored static inputs, or fresh ones when the grid differs."""
    names, fresh = static_channels(view)
    stored = model.static
    if tuple(stored.shape[-2:]) == fresh.shape[-2:] and stored.shape[0] == fresh.shape[0]:
        grid = model.meta.data["grid"]
        same = [
            _same_axis(np.asarray(grid[axis]), view.fields[axis].values, periodic=axis == "lon")
            for axis in ("lat", "lon")
        ]
        if all(same):
            return stored
    if stored.shape[0] != fresh.shape[0]:
        raise ClimatuneError(
            "the model was trained with user static fields that this data does not provide; set data.static"
        )
    return torch.from_numpy(fresh)
