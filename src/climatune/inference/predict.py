"""Apply a model to a task view: task, variable and unit checks, static inputs, predictions."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
import xarray as xr
from torch.utils.data import DataLoader, Dataset

from climatune.data.normalize import SourceNormalizer
from climatune.data.samples import TaskSamples, static_channels, with_static_record
from climatune.data.sources import SOURCE
from climatune.data.units import convert, to_units
from climatune.data.view import TaskView
from climatune.errors import ClimatuneError
from climatune.inference.margin import (
    Margins,
    MarginSamples,
    crop_margins,
    margin_static,
    same_axis,
    trim_margins,
)
from climatune.models.ensemble import mc_dropout, members_of
from climatune.models.padding import lon_padding

if TYPE_CHECKING:  # LoadedModel.predict calls predict_view
    from climatune.inference.model import LoadedModel

_log = logging.getLogger("climatune")

#: The attribute of predictions naming the model's inputs that the data lacked
ABSENT_INPUTS = "absent_inputs"

__all__ = [
    "predict_view",
    "predict_distribution",
    "model_units",
    "check_task",
    "model_view",
    "input_names",
    "ABSENT_INPUTS",
    "padded_for",
    "static_for",
    "margined_static",
]


def model_units(
    model: LoadedModel, view: TaskView, owner: str = "the model"
) -> tuple[TaskView, list[str]]:
    """``view`` with its inputs and targets converted to the model's units, and the changes.

    Compatible units are converted (``sst: degC -> K``), lazily. Missing or incompatible
    units are refused (:func:`~climatune.data.units.to_units`); ``owner`` names the model
    in the message.
    """
    wanted = {**model.meta.units("inputs"), **model.meta.units("outputs")}
    fields, changes = to_units(view.fields, wanted, owner)
    index = view.index
    if index is not None and str(index.attrs.get("units", "")).strip():
        # an index series with units (one averaged from a field) follows the model's
        # output units like a field target; a bare series is read as it is
        name = view.targets[0]
        moved, more = to_units(index.to_dataset(name=name), wanted, owner)
        index = moved[name].rename(index.name)
        changes += [f"index {line}" for line in more]
    if not changes:
        return view, []
    coarse = view.coarse if view.coarse is None else to_units(view.coarse, wanted, owner)[0]
    return dataclasses.replace(view, fields=fields, coarse=coarse, index=index), changes


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
    """``view`` checked against the model (task, input variables), in its input order and
    in the model's units (:func:`model_units`).

    A model whose network runs on any subset of its inputs (``vartoken_vit``:
    :attr:`LoadedModel.accepts_subset`) accepts data that lacks some of them: they are
    left out (:attr:`TaskView.left_out`, fed by name: no tokens, as a training source
    lacking them has none), with one ``note:``. Other models refuse such data.
    """
    check_task(model, view)
    present = [n for n in model.meta.inputs if n in view.inputs]
    missing = [n for n in model.meta.inputs if n not in view.inputs]
    if missing:
        _check_subset(model, present, missing, view.inputs)
        new = [n for n in missing if n not in view.left_out]  # the others were noted
        if new:
            _log.warning(
                "note: input variable(s) %s of the model not among the data's inputs: left out (the "
                "network runs on %s alone)",
                ", ".join(new),
                ", ".join(present),
            )
    view, converted = model_units(model, view)
    if converted:
        _log.warning("note: units converted to the model's: %s", ", ".join(converted))
    view = with_static_record(view, model.meta.data)  # its encodings, its fields' scale
    return dataclasses.replace(view, inputs=present, left_out=tuple(missing))


def _check_subset(
    model: LoadedModel, present: list[str], missing: list[str], have: list[str]
) -> None:
    """Refuse ``missing`` inputs that the model cannot run without."""
    if not model.accepts_subset:
        raise ClimatuneError(
            f"the data lacks input variable(s) {missing} that the model needs; it has "
            f"{have}; give them (only a vartoken_vit model runs on a subset of its inputs)"
        )
    if not present:  # build_view(partial_inputs=True) refuses this first
        raise ClimatuneError(f"the data has none of the model's input variables {missing}")
    net = members_of(model.net)[0]
    based = {
        out: net.variables[i]
        for out, i in zip(model.meta.outputs, net.residual_index)
        if i >= 0 and net.variables[i] in missing
    }
    if based:
        pairs = ", ".join(f"{out} from {base}" for out, base in based.items())
        raise ClimatuneError(
            f"the model predicts the change of {pairs} (model.residual) and the data lacks "
            f"{sorted(set(based.values()))}; give it, or use a model trained with "
            "model.residual=false"
        )


def input_names(model: LoadedModel, view: TaskView) -> list[str] | None:
    """The variables of the ``fields`` that ``view``'s samples give the network (``names``
    of :meth:`~climatune.models.net.ClimateNet.forward`): None when they are all of the
    model's inputs in its order, the subset otherwise (:func:`model_view`)."""
    return None if list(view.inputs) == list(model.meta.inputs) else list(view.inputs)


@torch.no_grad()
def predict_view(
    model: LoadedModel,
    view: TaskView,
    split: str,
    *,
    batch_size: int = 32,
    units: Literal["input", "model"] = "input",
    members: bool = False,
    samples: int = 0,
) -> xr.Dataset:
    """Predictions for every sample of ``split``, denormalised and shaped like ``view.truth``.

    A model trained on anomalies gets the climatology of each target's month added back:
    the predictions are full values. An ensemble gives its members' mean, or with
    ``members=True`` each member's prediction along a leading ``member`` dimension.
    ``samples=N`` draws N predictions per member with dropout on
    (:func:`~climatune.models.ensemble.mc_dropout`, seeded: the same call gives the same
    draws), along ``member`` too; a Gaussian head's N draws per member come from its
    predictive Gaussians instead (seeded as well), dropout off. A Gaussian head's
    prediction is its mean (:func:`predict_distribution` gives the scale too).

    Cells that are NaN in the input are NaN in the output. The cells of the halo around a
    region are predicted too; the metrics weight them 0 (:meth:`TaskView.weights`). A
    grid other than the model's own (a regional crop of it) is predicted with a margin of
    replicated cells around it, cut off again (:mod:`climatune.inference.margin`).
    ``units="input"`` gives each field in the units ``view`` has it in (converted back
    from the model's when the data was converted, :func:`model_units`); ``"model"`` in the
    model's.
    """
    given, given_index = view.fields, view.index
    view = model_view(model, view)
    batches, static, margin = _samples(model, view, split)
    names = input_names(model, view)
    model.net.eval()
    loader = DataLoader(batches, batch_size=batch_size)
    with padded_for(model, view):
        if samples and model.distribution == "gaussian":
            pred = _gaussian_draws(model, loader, static, samples, names)
        elif samples:
            pred = _sampled(model, loader, static, samples, names)
        elif members:
            pred = np.concatenate(
                [model.forward_members(b["fields"], static, names).float().numpy() for b in loader],
                axis=1,
            )
        else:
            pred = np.concatenate(
                [model.forward(b["fields"], static, names).float().numpy() for b in loader]
            )
    lead = ["member"] if samples or members else []
    pred = trim_margins(pred, margin)
    out = _dataset(model, view, split, pred, lead, given, given_index, units)
    return out.assign_coords(member=np.arange(pred.shape[0])) if lead else out


@torch.no_grad()
def predict_distribution(
    model: LoadedModel,
    view: TaskView,
    split: str,
    *,
    batch_size: int = 32,
    units: Literal["input", "model"] = "input",
) -> tuple[xr.Dataset, xr.Dataset]:
    """Each member's predictive Gaussian on ``split``: its mean and its standard deviation.

    Both have a leading ``member`` dimension (of length 1 for a single network) and are
    shaped and masked like :func:`predict_view`'s predictions; the standard deviation is
    in the same units as the mean (a change of units scales it, never shifts it).

    Raises
    ------
    ClimatuneError
        For a model whose head is not Gaussian (``model.head_distribution``).
    """
    if model.distribution != "gaussian":
        raise ClimatuneError(
            "this model predicts values, not a distribution: train it with "
            "model.head_distribution=gaussian"
        )
    given, given_index = view.fields, view.index
    view = model_view(model, view)
    batches, static, margin = _samples(model, view, split)
    names = input_names(model, view)
    model.net.eval()
    means, scales = [], []
    with padded_for(model, view):
        for b in DataLoader(batches, batch_size=batch_size):
            mean, scale = model.forward_members_dist(b["fields"], static, names)
            assert scale is not None
            means.append(mean.float().numpy())
            scales.append(scale.float().numpy())
    mu = trim_margins(np.concatenate(means, axis=1), margin)
    sigma = trim_margins(np.concatenate(scales, axis=1), margin)
    lead = ["member"]
    ds = _dataset(model, view, split, mu, lead, given, given_index, units)
    spread = _dataset(model, view, split, sigma, lead, given, given_index, units, spread=True)
    member = np.arange(mu.shape[0])
    return ds.assign_coords(member=member), spread.assign_coords(member=member)


def _dataset(
    model: LoadedModel,
    view: TaskView,
    split: str,
    pred: np.ndarray,
    lead: list[str],
    given: xr.Dataset,
    given_index: xr.DataArray | None,
    units: Literal["input", "model"],
    *,
    spread: bool = False,
) -> xr.Dataset:
    """Normalised predictions ``pred`` (``[*lead, N, n_out, ...]``) as a dataset in
    physical units; ``spread`` denormalises a standard deviation (scaled, not centred)."""
    steps = view.target_index(view.anchors[split])
    times = view.fields.time.isel(time=steps)
    names = model.meta.outputs
    records = {r["name"]: r for r in model.meta.data["outputs"]}
    data = {}
    months = times.dt.month.values
    for i, name in enumerate(names):
        values = pred[..., i, :, :] if pred.ndim == 4 + len(lead) else pred[..., i]
        cells = values.shape[1 + len(lead) :]  # after the member and time axes
        std, centre = _denormalization(model, view, split, name, months, cells)
        values = values * std + (0.0 if spread else centre)
        attrs = {k: v for k, v in records[name].items() if k != "name" and v}
        if values.ndim == 1 + len(lead):
            series = xr.DataArray(values, coords={"time": times}, dims=[*lead, "time"], attrs=attrs)
            back = "" if given_index is None else str(given_index.attrs.get("units", ""))
            if units == "input" and back and back != attrs.get("units", back):
                series = _convert(series, back, spread)
            data[name] = series
            continue
        da = xr.DataArray(
            values,
            coords={"time": times, "lat": view.fields.lat, "lon": view.fields.lon},
            dims=[*lead, "time", "lat", "lon"],
            attrs=attrs,
        )
        if name in given:
            back = given[name].attrs.get("units", "")
            if units == "input" and back and back != attrs.get("units", back):
                da = _convert(da, back, spread)
            # blank the cells without a value at any predicted time (land in an SST
            # field), not those that happen to miss the first step
            da = da.where(given[name].isel(time=steps).notnull().any("time"))
        data[name] = da
    attrs = {ABSENT_INPUTS: ", ".join(view.left_out)} if view.left_out else {}
    return xr.Dataset(data, attrs=attrs)


def _denormalization(
    model: LoadedModel,
    view: TaskView,
    split: str,
    name: str,
    months: np.ndarray,
    cells: tuple[int, ...],
) -> tuple[np.ndarray | float, np.ndarray | float]:
    """The std and the centre that turn the network's ``name`` back into physical values
    at the target times of ``split``: a source's own statistics for the steps of a source
    the model kept them for (the targets were normalised with them in training), the
    pooled ones otherwise."""
    norm = model.normalizer
    std: np.ndarray | float = norm.std_[name]
    centre: np.ndarray | float = norm.centre(name, months, cells)
    if not isinstance(norm, SourceNormalizer) or SOURCE not in view.fields.coords:
        return std, centre
    labels = np.asarray(view.fields[SOURCE].values)[view.target_index(view.anchors[split])]
    own = {str(n): norm.for_source(str(n)) for n in np.unique(labels)}
    shape = (labels.size, *([1] * len(cells)))
    stds = np.array([own[str(n)].std_[name] for n in labels]).reshape(shape)
    means = np.array([own[str(n)].mean_[name] for n in labels]).reshape(shape)
    return stds, means


def _convert(da: xr.DataArray, units: str, spread: bool) -> xr.DataArray:
    """``da`` in ``units``; a spread converts as a difference (K to degC: unchanged)."""
    if not spread:
        return convert(da, units)
    return convert(da, units) - convert(xr.zeros_like(da).assign_attrs(da.attrs), units)


def _gaussian_draws(
    model: LoadedModel,
    loader: DataLoader,
    static: torch.Tensor,
    samples: int,
    names: list[str] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """``samples`` random draws from each member's predictive Gaussian,
    ``[members * samples, N, ...]``, seeded (the same call gives the same draws)."""
    generator = torch.Generator().manual_seed(seed)
    draws = []
    for b in loader:
        mean, scale = model.forward_members_dist(b["fields"], static, names)
        assert scale is not None
        mean, scale = mean.float().cpu(), scale.float().cpu()
        noise = torch.randn((samples, *mean.shape), generator=generator)
        draws.append((mean + scale * noise).flatten(0, 1).numpy())  # as _sampled orders them
    return np.concatenate(draws, axis=1)


@contextmanager
def padded_for(model: LoadedModel, view: TaskView) -> Iterator[None]:
    """The model's networks pad longitude as ``view``'s grid needs while in the block:
    circularly on a global grid, at the edges of a regional crop of it (a network
    trained on the globe would otherwise wrap the crop's east edge onto its west edge)."""
    with ExitStack() as stack:
        for net in members_of(model.net):
            stack.enter_context(lon_padding(net, view.periodic_lon))
        yield


def _sampled(
    model: LoadedModel,
    loader: DataLoader,
    static: torch.Tensor,
    samples: int,
    names: list[str] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """``samples`` MC-dropout draws per member, ``[members * samples, N, ...]``, seeded."""
    devices = [model.device] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), mc_dropout(model.net):
        torch.manual_seed(seed)
        draws = [
            torch.cat([model.forward_members(b["fields"], static, names) for _ in range(samples)])
            for b in loader
        ]
    return np.concatenate([d.float().numpy() for d in draws], axis=1)


def _samples(
    model: LoadedModel, view: TaskView, split: str
) -> tuple[Dataset, torch.Tensor, Margins | None]:
    """The samples of ``split`` the model reads, its static inputs, and the margin of
    cells around them (:func:`margined_static`), which the predictions lose again."""
    batches: Dataset = TaskSamples(view, split, model.normalizer, mask_ratio=0.0)
    static, margins = margined_static(model, view)
    if margins is not None:
        batches = MarginSamples(batches, margins, view.periodic_lon)
    return batches, static, margins


def margined_static(model: LoadedModel, view: TaskView) -> tuple[torch.Tensor, Margins | None]:
    """The static inputs the model reads on ``view``'s grid, and the margin around them:
    at least ``CROP_MARGIN`` cells around a grid other than the model's own
    (:mod:`climatune.inference.margin`; None on its own grid). The input fields need the
    same margin (:func:`~climatune.inference.margin.pad_margins`)."""
    view = with_static_record(view, model.meta.data)
    static = static_for(model, view)
    multiple = members_of(model.net)[0].backbone.grid_multiple
    margins = crop_margins(model.meta.data["grid"], view, multiple)
    if margins is not None:
        static = margin_static(static, view, margins)
    return static, margins


def static_for(model: LoadedModel, view: TaskView) -> torch.Tensor:
    """The model's stored static inputs on its own grid; on another, fresh ones read as
    the model reads them (:func:`~climatune.data.samples.with_static_record`)."""
    names, fresh = static_channels(with_static_record(view, model.meta.data))
    _check_static_fields(model.meta.data.get("static") or [], names)
    stored = model.static
    if tuple(stored.shape[-2:]) == fresh.shape[-2:] and stored.shape[0] == fresh.shape[0]:
        grid = model.meta.data["grid"]
        same = [
            same_axis(np.asarray(grid[axis]), view.fields[axis].values, periodic=axis == "lon")
            for axis in ("lat", "lon")
        ]
        if all(same):
            return stored
    if stored.shape[0] != fresh.shape[0]:
        raise ClimatuneError(
            "the model was trained with user static fields that this data does not provide; set data.static"
        )
    return torch.from_numpy(fresh)


def _check_static_fields(trained: Sequence[str], names: Sequence[str]) -> None:
    """Refuse user static fields (channels ``static_NAME``) other than those the model was
    trained with (``trained``, its static channel names; none known: not checked). Another
    field in their place would be read with their weights, silently on any grid."""
    theirs = [n.removeprefix("static_") for n in trained if n.startswith("static_")]
    mine = [n.removeprefix("static_") for n in names if n.startswith("static_")]
    if not trained or not mine or theirs == mine:  # none given: static_for says to set them
        return
    if not theirs:
        raise ClimatuneError(
            f"data.static gives {mine}, but the model was trained without user static "
            "fields; leave data.static unset"
        )
    raise ClimatuneError(
        f"data.static gives {mine}, but the model was trained with {theirs}: give those, "
        "in that order"
    )
