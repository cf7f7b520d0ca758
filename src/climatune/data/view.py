"""The task seen in xarray: which fields, which steps, which cells are scored.

:class:`TaskView` is the one description of a task that the torch datasets, the baselines
and the evaluation share, so that networks and baselines see exactly the same samples.
:func:`build_view` makes it in steps, one function each: choose the variables
(:func:`select_variables`), read them (:func:`~climatune.data.selection.select`), give each
level its own variable (:func:`flatten_levels`), cut the region (:func:`cut_region`) and
split the time axis (:func:`~climatune.data.splits.split_anchors`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import xarray as xr

from climatune.data.grid import coarsen_bilinear, is_global, lat_weights
from climatune.data.io import open_dataset
from climatune.data.selection import (
    check_finite,
    check_not_all_nan,
    empty_variables,
    level_name,
    require_variables,
    select,
    without_fill,
)
from climatune.data.settings import (
    DataConfig,
    IndexTargetConfig,
    RegionConfig,
    StaticConfig,
    TaskConfig,
)
from climatune.data.sources import SOURCE, open_sources
from climatune.data.splits import sample_anchors, split_anchors, time_runs
from climatune.errors import ClimatuneError

__all__ = [
    "TaskView",
    "build_view",
    "select_variables",
    "flatten_levels",
    "level_variables",
    "cut_region",
    "field_variables",
    "keep_usable_inputs",
    "note_idle_sources",
    "check_split_targets",
]

_log = logging.getLogger("climatune")


def field_variables(ds: xr.Dataset) -> list[str]:
    """Data variables that are gridded fields with a time axis."""
    return [n for n, v in ds.data_vars.items() if {"time", "lat", "lon"} <= set(v.dims)]


def flatten_levels(ds: xr.Dataset) -> xr.Dataset:
    """Turn each level of a ``(time, level, lat, lon)`` variable into its own variable.

    ``zg`` on levels 500 and 850 becomes ``zg500`` and ``zg850`` (as
    :func:`~climatune.data.selection.select` names them); the level value is kept in the
    ``level`` attribute. Everything downstream then deals with 3-D fields only.
    """

    if "level" not in ds.dims:
        return ds
    out = {}
    for name, da in ds.data_vars.items():
        if "level" not in da.dims:
            out[name] = da
            continue
        for value in da.level.values:
            key = level_name(name, value)
            out[key] = da.sel(level=value, drop=True).assign_attrs(da.attrs, level=float(value))
    flat = xr.Dataset(out, attrs=ds.attrs)
    return flat.drop_vars([c for c in ("level",) if c in flat.coords])


@dataclass
class TaskView:
    """A task over one dataset: fields in physical units plus the samples of each split."""

    kind: str
    fields: xr.Dataset
    inputs: list[str]
    targets: list[str]
    history: int
    lead: int
    factor: int
    anchors: dict[str, np.ndarray]
    region_mask: xr.DataArray
    index: xr.DataArray | None = None
    static: xr.Dataset | None = None
    blocks: dict[str, tuple[int, int]] = field(default_factory=dict)
    periodic_lon: bool = False
    coarse: xr.Dataset | None = field(default=None, repr=False, compare=False)
    #: Inputs left out of ``inputs``, each already noted: those with no valid cell in a
    #: regional domain (:func:`build_view`), a model's that the data lacks
    #: (``inference.model_view``)
    left_out: tuple[str, ...] = ()
    #: Wavelengths (degrees) of the extra lat/lon encodings among the static inputs
    #: (``data.position_wavelengths``; a model's own on its views)
    position: tuple[float, ...] = ()
    #: ``(mean, std)`` that z-score each user static field: a model's, fitted on the grid
    #: it was trained on; None fits them on this view's cells (a new training run)
    static_scale: dict[str, tuple[float, float]] | None = None

    @property
    def is_scalar(self) -> bool:
        return self.kind == "index"

    @cached_property
    def months(self) -> np.ndarray:
        """Calendar month (1-12) of every step, computed once: the reads of anomaly
        normalisation index their climatology with it."""
        return np.asarray(self.fields.time.dt.month.values)

    def target_index(self, anchor: np.ndarray | int) -> np.ndarray | int:
        """Time index of the target of the sample anchored at ``anchor``."""
        return anchor + (self.lead if self.kind in ("forecast", "index") else 0)

    def target_times(self, split: str) -> xr.DataArray:
        return self.fields.time.isel(time=self.target_index(self.anchors[split]))

    def steps(self, split: str = "train") -> np.ndarray:
        """Every time step the samples of ``split`` read, inputs and targets, in order.

        A split made of several blocks (the training folds of cross-validation) leaves out
        the steps between them, so statistics fitted on these steps never see another split.
        """
        anchors = np.asarray(self.anchors[split])
        span = np.arange(1 - self.history, int(self.target_index(0)) + 1)
        return np.unique(anchors[:, None] + span[None, :])

    def input_fields(self) -> xr.Dataset:
        """The fields the network sees: for downscaling, coarsened then re-interpolated.

        The coarse grid is that of the whole file (``coarse``, cut like ``fields``), so a
        regional crop sees the same coarse cells as the archive it was pre-trained on.
        """
        if self.kind != "downscale":
            return self.fields[self.inputs]
        if self.coarse is None:
            self.coarse = coarsen_bilinear(self.fields[self.inputs], self.factor)
        return self.coarse[self.inputs]

    def target_data(self) -> xr.Dataset:
        """The targets at every time step: fields, or the index as a ``(time,)`` variable."""
        if self.is_scalar:
            if self.index is None:
                raise ClimatuneError("an index task needs its index series (task.index)")
            return self.index.to_dataset(name=self.targets[0])
        return self.fields[self.targets]

    def truth(self, split: str) -> xr.Dataset:
        """Targets at the target times of ``split``: ``(time, lat, lon)`` fields, or the index."""
        return self.target_data().isel(time=self.target_index(self.anchors[split]))

    def weights(self) -> xr.DataArray:
        """The cell weights of the scored region: cos(latitude) inside it, 0 outside it,
        mean 1 over its cells. The loss and the metrics weight by them; nothing on the way
        to a metric masks the region again."""
        return lat_weights(self.fields.lat, self.region_mask).transpose("lat", "lon")

    def n_samples(self) -> dict[str, int]:
        return {k: int(v.size) for k, v in self.anchors.items()}


def _lag(kind: str, history: int, lead: int) -> tuple[int, int]:
    """Effective (history, lead) in steps for the sample layout of a task kind."""
    if kind in ("forecast", "index"):
        return history, lead
    return 1, 0


def _is_level_of(da: xr.DataArray, key: str, name: str) -> bool:

    return "level" in da.attrs and key == level_name(name, da.attrs["level"])


def _index_series(spec: IndexTargetConfig | None, ds: xr.Dataset) -> xr.DataArray:
    """The ``(time,)`` target series of an index task at the times of ``ds``."""
    if spec is None:
        raise ClimatuneError(
            "an index task needs task.index.variable (and optionally task.index.path)"
        )
    source = open_dataset(spec.path) if spec.path else ds
    if spec.variable not in source:
        names = ", ".join(map(str, source.data_vars))
        raise ClimatuneError(f"index variable '{spec.variable}' missing; the data has: {names}")
    series = source[spec.variable]
    if {"lat", "lon"} <= set(series.dims):
        if spec.path and (
            series.lat.size != ds.lat.size
            or series.lon.size != ds.lon.size
            or not np.allclose(series.lat, ds.lat)
            or not np.allclose(series.lon, ds.lon)
        ):
            raise ClimatuneError(
                f"the index field '{spec.variable}' in {spec.path} is on another grid than the inputs; "
                "regrid it to the input grid or give a ready-made (time) series"
            )
        box, inside = series, xr.DataArray(True)
        if spec.region is not None:
            shape = spec.region.shape()
            box = shape.subset(series)
            inside = shape.mask(box)  # a named region: 0 outside its polygon
        weights = (np.cos(np.deg2rad(box.lat)) * inside).fillna(0)
        series = box.weighted(weights).mean(("lat", "lon"), keep_attrs=True)  # units kept
    extra = [d for d in series.dims if d != "time"]
    if extra:
        raise ClimatuneError(
            f"index '{spec.variable}' has extra dims {extra}; it must be a (time) series"
        )
    cal_a = ds.time.dt.calendar if ds.time.size else None
    cal_b = series.time.dt.calendar if series.time.size else None
    if cal_a != cal_b:
        raise ClimatuneError(
            f"calendar mismatch: inputs use {cal_a}, index '{spec.variable}' uses {cal_b}; convert one with xarray's convert_calendar"
        )
    missing = np.setdiff1d(ds.time.values, series.time.values)
    if missing.size:
        raise ClimatuneError(
            f"index '{spec.variable}' lacks {missing.size} of the input times (first: {missing[0]}); align the files"
        )
    return series.sel(time=ds.time).rename(spec.variable)


def _refuse_identity(task: TaskConfig, inputs: list[str], targets: list[str]) -> None:
    """A forecast or index at lead 0 whose target is also an input asks to copy the input."""
    if task.kind not in ("forecast", "index") or task.lead > 0:
        return
    if task.kind == "index":
        targets = [task.index.variable] if task.index else []
    copied = [t for t in targets if t in inputs]
    if copied:
        raise ClimatuneError(
            f"task.lead=0 with target(s) {copied} among the inputs asks the model to copy its "
            "input at the target time; set task.lead >= 1 or remove them from data.variables"
        )


def _static(static: StaticConfig | None, domain: xr.Dataset) -> xr.Dataset | None:
    """The user's static fields on the cells of ``domain``, or None when there are none."""
    if static is None:
        return None
    src = open_dataset(static.path)
    missing = [v for v in static.variables if v not in src]
    if missing:
        raise ClimatuneError(
            f"static variable(s) {missing} missing in {static.path}; it has: {', '.join(map(str, src.data_vars))}"
        )
    out = src[static.variables]
    out = out.isel(time=0, drop=True) if "time" in out.dims else out
    out = out.assign_coords(lon=np.mod(out.lon, 360.0)).sortby("lon")  # match modulo 360
    try:
        out = out.sel(
            lat=domain.lat, lon=np.mod(domain.lon, 360.0), method="nearest", tolerance=1e-3
        )
    except KeyError:
        raise ClimatuneError(
            f"static fields in {static.path} are on another grid than the data; regrid them first"
        ) from None
    return out.assign_coords(lat=domain.lat, lon=domain.lon).load()


def select_variables(
    data: DataConfig, task: TaskConfig, ds: xr.Dataset, *, partial_inputs: bool = False
) -> tuple[list[str], list[str]]:
    """The task's input and field-target variables of ``ds``, checked.

    Inputs default to every field of ``ds`` and targets to the inputs; an index task has
    no field target. Refuses a missing variable, a downscaling or reconstruction target
    that is not an input, and a lead-0 target that is also an input. With
    ``partial_inputs``, inputs that ``ds`` lacks are left out instead (the targets are
    still required), as long as one of them is there.
    """
    inputs = list(data.variables or field_variables(ds))
    if not inputs:
        where = "data.sources" if data.sources else data.path
        raise ClimatuneError(f"{where} holds no (time, lat, lon) fields to learn from")
    targets = [] if task.kind == "index" else list(data.targets or inputs)
    if partial_inputs:
        inputs = _present_inputs(ds, inputs, targets)
    require_variables(ds, inputs + targets)
    if task.kind in ("downscale", "reconstruct") and set(targets) - set(inputs):
        raise ClimatuneError(
            f"a {task.kind} task predicts its own inputs; targets {sorted(set(targets) - set(inputs))} are not inputs"
        )
    _refuse_identity(task, inputs, targets)
    return inputs, targets


def _present_inputs(ds: xr.Dataset, inputs: list[str], targets: list[str]) -> list[str]:
    """The ``inputs`` that ``ds`` holds; refuses data lacking a target or every input."""
    have = ", ".join(str(n) for n in ds.data_vars) or "no variables"
    present = [n for n in inputs if n in ds.data_vars]
    if not present:
        raise ClimatuneError(
            f"the data has none of the input variables {inputs}; it has: {have} "
            "(rename its variables to these names)"
        )
    lost = [t for t in targets if t not in ds.data_vars]
    if lost:
        which = f"variable '{lost[0]}'" if len(lost) == 1 else f"variables {lost}"
        raise ClimatuneError(
            f"target {which} missing; the file has: {have} (an input may be left out, "
            "a target may not)"
        )
    return present


def level_variables(flat: xr.Dataset, names: list[str]) -> list[str]:
    """The variables of ``flat`` (:func:`flatten_levels`) that ``names`` became, in order:
    each name itself, or one variable per selected level."""
    return [k for n in names for k in flat.data_vars if k == n or _is_level_of(flat[k], k, n)]


def cut_region(
    flat: xr.Dataset, region: RegionConfig | None, coarse: xr.Dataset | None = None
) -> tuple[xr.Dataset, xr.Dataset | None, xr.DataArray]:
    """The domain read (the region plus its halo), ``coarse`` cut alike, and the scored cells.

    Returns
    -------
    domain, coarse, region_mask
        The boolean ``(lat, lon)`` mask marks the region inside the domain; without a
        region the whole grid is read and scored.
    """
    if region is None:
        return flat, coarse, xr.ones_like(flat.lat * flat.lon, dtype=bool).rename("region_mask")
    shape = region.shape()
    domain = shape.subset(flat, halo=region.halo)
    if coarse is not None:
        coarse = shape.subset(coarse, halo=region.halo)
    return domain, coarse, shape.mask(domain)


def keep_usable_inputs(
    domain: xr.Dataset, inputs: list[str], targets: list[str], region: RegionConfig
) -> tuple[xr.Dataset, list[str]]:
    """Drop the inputs with no valid cell in a regional ``domain``, with a note.

    SST read over a land region is NaN everywhere: the input is dropped, as fine-tuning
    drops any variable the new task lacks. A target with no valid cell is an error.
    """
    empty = empty_variables(domain)
    where = f"the domain read for region {region.shape()} (halo {region.halo:g}°)"
    lost = [t for t in targets if t in empty]
    if lost:
        raise ClimatuneError(
            f"target '{lost[0]}' has no valid cell in {where}, e.g. an ocean field over land; "
            "choose another region or target"
        )
    dropped = [v for v in inputs if v in empty]
    if not dropped:
        return domain, inputs
    if len(dropped) == len(inputs):
        raise ClimatuneError(
            f"no input has a valid cell in {where} ({', '.join(dropped)} are all NaN there); "
            "choose another region or other variables"
        )
    _log.warning(
        "note: input(s) %s have no valid cell in %s; dropped from the inputs",
        ", ".join(dropped),
        where,
    )
    return domain.drop_vars(dropped), [v for v in inputs if v not in dropped]


def _every_anchor(time: xr.DataArray, history: int, lead: int) -> np.ndarray:
    """The anchors of every sample on ``time`` that spans no hole: a prediction's samples."""
    anchors = sample_anchors(np.arange(time.size), history, lead, time_runs(time))
    if anchors.size == 0:
        raise ClimatuneError(
            f"the data has {time.size} steps; this model needs at least {history + lead}"
        )
    return anchors


def note_idle_sources(fields: xr.Dataset, anchors: Mapping[str, np.ndarray]) -> list[str]:
    """The sources of a multi-source ``fields`` (its ``source`` coordinate) with no training
    sample in ``anchors``, each with a note: such a source trains nothing (and has no
    statistics of its own), though its steps may still be validated or tested on."""
    if SOURCE not in fields.coords or "train" not in anchors:
        return []
    labels = np.asarray(fields[SOURCE].values).astype(str)
    used = set(labels[anchors["train"]].tolist())
    idle = [name for name in dict.fromkeys(labels.tolist()) if name not in used]
    years = fields.time.dt.year.values
    for name in idle:
        own = years[labels == name]
        _log.warning(
            "note: source %s has no training sample in data.split.train (its steps span "
            "%d-%d): it trains nothing; move the split or drop it from data.sources",
            name,
            int(own.min()),
            int(own.max()),
        )
    return idle


def check_split_targets(
    fields: xr.Dataset,
    anchors: Mapping[str, np.ndarray],
    targets: list[str],
    history: int,
    lead: int,
    kind: str,
) -> None:
    """Refuse a split whose targets all come from sources that lack every target variable
    (fed as all NaN): it would train, validate or score nothing. Only multi-source data
    (its ``source`` coordinate) is checked, from what each source holds, reading nothing."""
    info = fields.attrs.get("sources")
    if SOURCE not in fields.coords or not isinstance(info, dict):
        return
    labels = np.asarray(fields[SOURCE].values).astype(str)
    shift = lead if kind in ("forecast", "index") else 0
    for split, anchor in anchors.items():
        names = set(labels[np.asarray(anchor) + shift].tolist())
        if names and all(set(targets) <= set(info.get(n, {}).get("missing", [])) for n in names):
            years = fields.time.dt.year.values[np.asarray(anchor) + shift]
            raise ClimatuneError(
                f"the {split} years {int(years.min())}-{int(years.max())} of data.split hold no "
                f"target value: their source(s) {', '.join(sorted(names))} lack "
                f"{', '.join(targets)}; move data.split.{split} to years of a source that has "
                "them, or map the variable in data.sources[].variables"
            )


def build_view(
    data: DataConfig,
    task: TaskConfig,
    ds: xr.Dataset | None = None,
    *,
    whole: bool = False,
    partial_inputs: bool = False,
) -> TaskView:
    """Select the variables, flatten the levels, cut the region and split the data of a task.

    Parameters
    ----------
    data
        What to read: the source, variables, levels, years, region, split and static fields.
    task
        The task kind, its steps (history, lead, factor) and its index target.
    ds
        An already opened, canonical dataset to use instead of ``data.path``.
    whole
        Ignore the split and the years: one ``"predict"`` block over every step.
    partial_inputs
        Leave out the inputs the data lacks rather than refuse it (a model's view: the
        model says whether it runs without them, ``inference.model_view``).
    """
    if ds is None:
        ds = open_sources(data) if data.sources else open_dataset(data.path)
    if data.sources and task.kind == "index":
        raise ClimatuneError("index tasks read one archive; give data.path instead of data.sources")
    inputs, targets = select_variables(data, task, ds, partial_inputs=partial_inputs)
    index = _index_series(task.index, ds) if task.kind == "index" and not whole else None
    chosen = list(dict.fromkeys(inputs + targets))
    ds = select(ds, variables=chosen, levels=data.levels, years=None if whole else data.years)
    flat = flatten_levels(ds)
    inputs = level_variables(flat, inputs)
    targets = [task.index.variable] if task.kind == "index" else level_variables(flat, targets)
    coarse = (  # no fill value may leak into the coarse cells around it
        coarsen_bilinear(without_fill(flat[inputs]), task.factor)
        if task.kind == "downscale"
        else None
    )
    domain, coarse, mask = cut_region(flat, data.region, coarse)
    domain = check_finite(domain)  # undeclared fill values become NaN, with a note
    usable = inputs
    if data.region is None:
        check_not_all_nan(domain)
    else:
        domain, usable = keep_usable_inputs(domain, inputs, targets, data.region)
    left_out, inputs = tuple(v for v in inputs if v not in usable), usable
    static = _static(data.static, domain)
    history, lead = _lag(task.kind, task.history, task.lead)
    if whole:
        anchors, blocks = {"predict": _every_anchor(domain.time, history, lead)}, {}
    else:
        anchors, blocks = split_anchors(
            domain.time, data.split, history, lead, train_fraction=data.train_fraction
        )
        note_idle_sources(domain, anchors)
        check_split_targets(domain, anchors, targets, history, lead, task.kind)
    return TaskView(
        kind=task.kind,
        fields=domain,
        inputs=inputs,
        targets=targets,
        history=history,
        lead=lead,
        factor=task.factor,
        anchors=anchors,
        region_mask=mask,
        index=None if index is None else index.sel(time=domain.time),
        static=static,
        blocks=blocks,
        periodic_lon=is_global(domain.lon),
        coarse=coarse,
        left_out=left_out,
        position=tuple(float(w) for w in data.position_wavelengths or ()),
    )
