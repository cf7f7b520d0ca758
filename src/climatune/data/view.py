"""The task seen in xarray: which fields, which steps, which cells are scored.

:class:`TaskView` is the one description of a task that the torch datasets, the baselines
and the evaluation share, so that networks and baselines see exactly the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from climatune.config import Config
from climatune.data.grid import coarsen_bilinear, is_global, lat_weights
from climatune.data.io import open_dataset, source_paths
from climatune.data.regions import Region
from climatune.data.selection import (
    check_finite,
    check_not_all_nan,
    level_name,
    require_variables,
    select,
    without_fill,
)
from climatune.data.splits import block_indices, default_blocks, sample_anchors, time_runs
from climatune.errors import ClimatuneError

__all__ = ["TaskView", "build_view", "flatten_levels", "field_variables", "config_inputs"]


def config_inputs(cfg: Config) -> list[Path]:
    """Every file or store ``cfg`` reads: the data, the index series and the static fields."""
    sources: list = [cfg.data.path]
    if cfg.task.index is not None and cfg.task.index.path:
        sources.append(cfg.task.index.path)
    if cfg.data.static is not None:
        sources.append(cfg.data.static.path)
    return [p for s in sources for p in source_paths(s)]


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

    @property
    def is_scalar(self) -> bool:
        return self.kind == "index"

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
        """Latitude weights inside the scored region, mean 1 over its cells."""
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


def _index_series(cfg: Config, ds: xr.Dataset) -> xr.DataArray:
    spec = cfg.task.index
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
        box = series
        if spec.region is not None:
            box = Region(*spec.region.lat, *spec.region.lon).subset(series)
        series = box.weighted(np.cos(np.deg2rad(box.lat)).fillna(0)).mean(("lat", "lon"))
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


def _refuse_identity(cfg: Config, inputs: list[str], targets: list[str]) -> None:
    """A forecast or index at lead 0 whose target is also an input asks to copy the input."""
    task = cfg.task
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


def _static(cfg: Config, domain: xr.Dataset) -> xr.Dataset | None:
    if cfg.data.static is None:
        return None
    src = open_dataset(cfg.data.static.path)
    missing = [v for v in cfg.data.static.variables if v not in src]
    if missing:
        raise ClimatuneError(
            f"static variable(s) {missing} missing in {cfg.data.static.path}; it has: {', '.join(map(str, src.data_vars))}"
        )
    out = src[cfg.data.static.variables]
    out = out.isel(time=0, drop=True) if "time" in out.dims else out
    out = out.assign_coords(lon=np.mod(out.lon, 360.0)).sortby("lon")  # match modulo 360
    try:
        out = out.sel(
            lat=domain.lat, lon=np.mod(domain.lon, 360.0), method="nearest", tolerance=1e-3
        )
    except KeyError:
        raise ClimatuneError(
            f"static fields in {cfg.data.static.path} are on another grid than the data; regrid them first"
        ) from None
    return out.assign_coords(lat=domain.lat, lon=domain.lon).load()


def build_view(cfg: Config, ds: xr.Dataset | None = None, *, whole: bool = False) -> TaskView:
    """Open, select, cut the region and split the data for ``cfg``'s task.

    Parameters
    ----------
    cfg
        The run config (data, task).
    ds
        An already opened, canonical dataset to use instead of ``cfg.data.path``.
    whole
        Ignore the split: one ``"predict"`` block over every step (for prediction).
    """
    ds = open_dataset(cfg.data.path) if ds is None else ds
    kind = cfg.task.kind
    inputs = list(cfg.data.variables or field_variables(ds))
    if not inputs:
        raise ClimatuneError(f"{cfg.data.path} holds no (time, lat, lon) fields to learn from")
    targets = [] if kind == "index" else list(cfg.data.targets or inputs)
    require_variables(ds, inputs + targets)
    if kind in ("downscale", "reconstruct") and set(targets) - set(inputs):
        raise ClimatuneError(
            f"a {kind} task predicts its own inputs; targets {sorted(set(targets) - set(inputs))} are not inputs"
        )
    _refuse_identity(cfg, inputs, targets)
    index = _index_series(cfg, ds) if kind == "index" and not whole else None
    chosen = list(dict.fromkeys(inputs + targets))
    ds = select(
        ds, variables=chosen, levels=cfg.data.levels, years=None if whole else cfg.data.years
    )
    if index is not None:
        index = index.sel(time=ds.time)
    flat = flatten_levels(ds)
    expand = {
        n: [k for k in flat.data_vars if k == n or _is_level_of(flat[k], k, n)] for n in chosen
    }
    inputs = [k for n in inputs for k in expand[n]]
    targets = (
        [k for n in targets for k in expand[n]] if kind != "index" else [cfg.task.index.variable]
    )
    coarse = (  # no fill value may leak into the coarse cells around it
        coarsen_bilinear(without_fill(flat[inputs]), cfg.task.factor)
        if kind == "downscale"
        else None
    )
    if cfg.data.region is not None:
        region = Region(*cfg.data.region.lat, *cfg.data.region.lon)
        domain = region.subset(flat, halo=cfg.data.region.halo)
        coarse = region.subset(coarse, halo=cfg.data.region.halo) if coarse is not None else None
        mask = region.mask(domain)
    else:
        domain = flat
        mask = xr.ones_like(domain.lat * domain.lon, dtype=bool).rename("region_mask")
    domain = check_finite(domain)  # undeclared fill values become NaN, with a note
    check_not_all_nan(domain)

    years = domain.time.dt.year.values
    runs = time_runs(domain.time)  # a sample never spans a hole in the time axis
    history, lead = _lag(kind, cfg.task.history, cfg.task.lead)
    common = dict(
        kind=kind,
        fields=domain,
        inputs=inputs,
        targets=targets,
        history=history,
        lead=lead,
        factor=cfg.task.factor,
        region_mask=mask,
        index=index,
        static=_static(cfg, domain),
        periodic_lon=is_global(domain.lon),
        coarse=coarse,
    )
    if whole:
        anchors = sample_anchors(np.arange(domain.time.size), history, lead, runs)
        if anchors.size == 0:
            raise ClimatuneError(
                f"the data has {domain.time.size} steps; this model needs at least {history + lead}"
            )
        return TaskView(anchors={"predict": anchors}, **common)
    blocks = split_blocks(cfg, int(years[0]), int(years[-1]))
    steps = block_indices(years, blocks)
    anchors: dict[str, np.ndarray] = {}
    for name in ("train", "val", "test"):
        pieces = [
            sample_anchors(idx, history, lead, runs)
            for key, idx in steps.items()
            if key.split("#")[0] == name
        ]
        if not pieces:
            continue
        anchors[name] = np.concatenate(pieces)
        if anchors[name].size == 0:
            shown = ", ".join(
                f"{b[0]}-{b[1]}" for k, b in blocks.items() if k.split("#")[0] == name
            )
            raise ClimatuneError(
                f"the {name} block {shown} leaves no samples (each needs {history + lead} steps "
                f"inside it: history={history}, lead={lead}); widen it in data.split"
            )
    if cfg.data.train_fraction < 1.0:
        keep = max(1, int(np.ceil(cfg.data.train_fraction * anchors["train"].size)))
        anchors["train"] = anchors["train"][-keep:]
    return TaskView(anchors=anchors, blocks=blocks, **common)


def split_blocks(cfg: Config, first: int, last: int) -> dict[str, tuple[int, int]]:
    """The config's year blocks (or the default split), checked against the data's years.

    A training set made of several blocks (as in cross-validation folds) gets keys
    ``train#0``, ``train#1``, ...
    """
    split = cfg.data.split
    raw = split.model_dump() if split else default_blocks(first, last)
    blocks: dict[str, tuple[int, int]] = {}
    for name, value in raw.items():
        if value is None:
            continue
        many = isinstance(value[0], (list, tuple))
        for i, block in enumerate(value if many else [value]):
            key = f"{name}#{i}" if many else name
            if block[1] < first or block[0] > last:
                raise ClimatuneError(
                    f"{name} block {block[0]}-{block[1]} lies outside the data's years {first}-{last}"
                )
            blocks[key] = (int(block[0]), int(block[1]))
    return blocks
