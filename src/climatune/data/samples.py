"""Torch datasets of task samples: the one small adapter from xarray to tensors.

A split's block of steps is read once, normalised, and kept as float32 arrays; a sample
is then a pair of array views. Inputs never read outside their own block (see
:mod:`climatune.data.splits`).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import dask
import dask.array as da
import dask.core
import numpy as np
import torch
import xarray as xr
from dask.optimization import cull
from torch.utils.data import Dataset, Sampler

from climatune.data.climatology import is_sub_annual
from climatune.data.io import reading
from climatune.data.normalize import Normalizer, SourceNormalizer
from climatune.data.selection import empty_variables
from climatune.data.sources import SOURCE, source_segments
from climatune.data.view import TaskView
from climatune.errors import ClimatuneError

try:  # dask's task objects: used only to merge reads of neighbouring chunks
    from dask._task_spec import Alias as _Alias
    from dask._task_spec import DataNode as _DataNode
    from dask._task_spec import Task as _Task
    from dask._task_spec import _execute_subgraph
except ImportError:  # pragma: no cover - older or newer dask: read chunk by chunk
    _Alias = _DataNode = _Task = _execute_subgraph = None

__all__ = [
    "TaskSamples",
    "EpochShuffleSampler",
    "SourceMixSampler",
    "static_channels",
    "position_channels",
    "static_scale",
    "static_record",
    "with_static_record",
    "fit_normalizer",
    "normalization_mode",
    "read_window",
    "patch_mask",
    "fill_nan",
    "block_nbytes",
]

_log = logging.getLogger("climatune")


_ANOMALY_KINDS = ("forecast", "index")


def normalization_mode(view: TaskView, choice: str = "auto") -> str:
    """``anomaly`` or ``global``: what ``data.normalization`` (``choice``) means for ``view``.

    ``auto`` is ``anomaly`` for forecast and index tasks on sub-annual data (the seasonal
    cycle dominates their variance) and ``global`` otherwise (annual data, downscale and
    reconstruct, whose inputs and targets are the same steps), and for an index named like
    one of its input fields (an index averaged from that field): the statistics are kept
    per name, and a field's climatology cannot centre a series.
    """
    clash = view.is_scalar and view.targets[0] in view.inputs
    if choice == "auto":
        sub_annual = is_sub_annual(view.fields.time)
        anomaly = view.kind in _ANOMALY_KINDS and sub_annual and not clash
        return "anomaly" if anomaly else "global"
    if choice == "anomaly" and clash:
        raise ClimatuneError(
            f"data.normalization=anomaly needs the index '{view.targets[0]}' named apart from "
            "the input field of that name (statistics are kept per name); set "
            "data.normalization to global or auto"
        )
    if choice == "anomaly" and view.kind not in _ANOMALY_KINDS:
        raise ClimatuneError(
            f"data.normalization=anomaly is for forecast and index tasks, not {view.kind}; "
            "set data.normalization to global or auto"
        )
    return choice


def _note_pooled_climatology(labels: np.ndarray) -> None:
    """Say that several sources read as anomalies share one climatology."""
    names = list(dict.fromkeys(labels.astype(str).tolist()))
    if len(names) > 1:
        _log.warning(
            "note: the anomalies of %s are taken from one climatology pooled over these %d "
            "sources, so each source's own mean state (its bias) stays in its anomalies; "
            "data.normalization=global with data.source_normalization=per_source centres "
            "each source on its own statistics",
            ", ".join(names),
            len(names),
        )


def fit_normalizer(view: TaskView, mode: str = "global", *, per_source: bool = False) -> Normalizer:
    """Fit statistics (``mode``: see :func:`normalization_mode`) on the training steps only,
    out of core, with Dask.

    With ``per_source`` (a multi-source view, ``data.source_normalization: per_source``)
    each source also gets its own statistics, fitted on its training steps, beside the
    pooled ones (:class:`~climatune.data.normalize.SourceNormalizer`).
    """
    ds = view.fields[view.inputs].merge(view.target_data(), compat="override", join="exact")
    train = ds.isel(time=view.steps("train"))
    if not per_source:
        if mode == "anomaly" and SOURCE in train.coords:
            _note_pooled_climatology(np.asarray(train[SOURCE].values))
        return Normalizer().fit(train, anomaly=mode == "anomaly")
    if mode == "anomaly":
        raise ClimatuneError(
            "data.source_normalization=per_source keeps one mean and std per source and "
            "variable; set data.normalization: global (or source_normalization: pooled)"
        )
    if SOURCE not in train.coords:
        raise ClimatuneError("data.source_normalization=per_source needs data.sources")
    out = SourceNormalizer().fit(train)
    labels = np.asarray(train[SOURCE].values)
    for name in dict.fromkeys(labels.tolist()):
        part = train.isel(time=np.flatnonzero(labels == name))
        have = [v for v in part.data_vars if v not in empty_variables(part)]
        out.sources_[str(name)] = Normalizer().fit(part[have])
    return out


def position_channels(
    lat: np.ndarray, lon: np.ndarray, wavelengths: Sequence[float] = ()
) -> dict[str, np.ndarray]:
    """The first static inputs, ``sin_lat``, ``cos_lat``, ``sin_lon``, ``cos_lon``, then the
    same four at each of ``wavelengths`` (degrees; ``sin_lat_10`` ...), on the
    ``(lat, lon)`` grid of the 1-D coordinates ``lat`` and ``lon`` (degrees).

    They depend on the coordinates alone, so a regional crop reads the values its cells
    had on the whole grid. Shorter wavelengths let a convolutional network tell nearby
    places apart without leaning on the distance to the domain's edges. They read
    longitude in [0, 360): a wavelength that does not divide 360° (50) would otherwise
    give a cell other values where a grid writes it another turn round (a crop across 0°
    writes 340° as -20°).

    Examples
    --------
    >>> list(position_channels(np.array([0.0]), np.array([90.0]), wavelengths=[10]))
    ['sin_lat', 'cos_lat', 'sin_lon', 'cos_lon', 'sin_lat_10', 'cos_lat_10', 'sin_lon_10', 'cos_lon_10']
    """
    east = np.mod(np.asarray(lon, float), 360.0)
    east[east >= 360.0] -= 360.0  # -1e-7 % 360 rounds to 360
    lat, lon, east = (
        np.deg2rad(np.asarray(lat, float))[:, None],
        np.deg2rad(np.asarray(lon, float))[None, :],
        np.deg2rad(east)[None, :],
    )
    ones = np.ones((lat.shape[0], lon.shape[1]))
    out: dict[str, np.ndarray] = {}
    for suffix, period in [("", 360.0), *((f"_{w:g}", float(w)) for w in wavelengths)]:
        turn = 360.0 / period  # the first four keep the longitudes as given, as before
        la, lo = lat * turn, (lon if suffix == "" else east) * turn
        out[f"sin_lat{suffix}"] = np.sin(la) * ones
        out[f"cos_lat{suffix}"] = np.cos(la) * ones
        out[f"sin_lon{suffix}"] = np.sin(lo) * ones
        out[f"cos_lon{suffix}"] = np.cos(lo) * ones
    return out


def static_scale(view: TaskView) -> dict[str, tuple[float, float]]:
    """``(mean, std)`` of each user static field: the view's own (a model's, set by the
    workflows that read a view for it), and for any other field its finite cells' here.

    A field without a finite cell here (read as 0 everywhere) gets none: a grid where it
    has values, or a fine-tune there, fits one on its cells rather than reading them
    unscaled (a field NaN over a training region, in metres elsewhere)."""
    known = view.static_scale or {}
    out: dict[str, tuple[float, float]] = {}
    for name, field in view.static.data_vars.items() if view.static is not None else ():
        if name in known:
            out[str(name)] = known[name]
            continue
        values = field.values.astype(float)
        finite = values[np.isfinite(values)]
        if finite.size:
            out[str(name)] = (float(finite.mean()), float(finite.std()) or 1.0)
    return out


def static_record(view: TaskView) -> dict[str, Any]:
    """What a model stores to read its static inputs again on any grid: the position
    wavelengths and the user fields' :func:`static_scale` (each only when there is one)."""
    out: dict[str, Any] = {}
    if view.position:
        out["position_wavelengths"] = list(view.position)
    if view.static is not None:
        out["static_scale"] = {k: list(v) for k, v in static_scale(view).items()}
    return out


def with_static_record(view: TaskView, record: Mapping[str, Any]) -> TaskView:
    """``view`` reading its static inputs as a model stored them (:func:`static_record`,
    the artifact's JSON): its position wavelengths, and its user fields z-scored with the
    statistics of the grid it was trained on rather than refitted on this view's cells."""
    scale = record.get("static_scale")
    return dataclasses.replace(
        view,
        position=tuple(float(w) for w in record.get("position_wavelengths", ())),
        static_scale=None if scale is None else {k: (v[0], v[1]) for k, v in scale.items()},
    )


def static_channels(view: TaskView) -> tuple[list[str], np.ndarray]:
    """Static inputs: lat/lon encodings (:func:`position_channels`, at ``view.position``),
    the valid-cell (land–sea) mask and user fields, z-scored by :func:`static_scale`.

    Returns channel names and a float32 ``[S, H, W]`` array.
    """
    channels = position_channels(view.fields.lat.values, view.fields.lon.values, view.position)
    valid = np.ones(next(iter(channels.values())).shape, dtype=bool)
    for name in view.inputs:
        first = np.isfinite(view.fields[name].isel(time=0).values)
        if first.any():  # a variable missing at the first step (another source's) says nothing
            valid &= first
    channels["valid_mask"] = valid.astype(float)
    if view.static is not None:
        scale = static_scale(view)
        for name, field in view.static.data_vars.items():
            values = field.values.astype(float)
            mu, sd = scale.get(str(name), (0.0, 1.0))  # none: no finite value to scale
            channels[f"static_{name}"] = np.where(np.isfinite(values), (values - mu) / sd, 0.0)
    return list(channels), np.stack(list(channels.values())).astype(np.float32)


#: What a read subtracts: the mean, or ``(table, month index)`` in anomaly mode, the
#: ``(12, ...)`` mean plus climatology and each step's row of it
Centre = float | tuple[np.ndarray, np.ndarray]


def _normalise_into(
    out: np.ndarray, values: np.ndarray, centre: Centre, std: float, key: tuple[slice, ...]
) -> None:
    """``out = (values - centre) / std``; ``key`` places ``out`` in the window (time, cells)."""
    if isinstance(centre, tuple):
        table, index = centre
        np.subtract(values, table[(index[key[0]],) + key[1:]], out=out, casting="unsafe")
    else:
        np.subtract(values, centre, out=out, casting="unsafe")
    out /= std


_GRAPHS: dict[str, tuple[str, dict]] = {}  # dask name -> (optimised name, graph), per process


def _graph(data: da.Array) -> tuple[str, dict]:
    """The optimised, materialised graph of ``data`` and its key name (cached per process)."""
    got = _GRAPHS.get(data.name)
    if got is None:
        if len(_GRAPHS) > 64:
            _GRAPHS.clear()
        (opt,) = dask.optimize(data)
        got = _GRAPHS[data.name] = (opt.name, dict(opt.__dask_graph__()))
    return got


def _block(name: str, graph: dict, index: tuple[int, ...]) -> np.ndarray:
    """Compute one block alone: no graph optimisation, ordering or concatenation."""
    key = (name, *index)
    return np.asarray(dask.core.get(cull(graph, [key])[0], [key])[0])


def _slicing_read(graph: dict, key: tuple) -> tuple[Any, tuple, dict] | None:
    """``(array, index, kwargs)`` if block ``key`` is a plain slice of a stored array."""
    node, scope = graph.get(key), graph
    for _ in range(8):  # follow aliases, and into a fused subgraph (a level selected)
        if isinstance(node, _Alias):
            node = scope.get(node.target, graph.get(node.target))
        elif isinstance(node, _Task) and node.func is _execute_subgraph:
            scope = node.args[0]
            node = scope.get(node.args[1])
        else:
            break
    if not isinstance(node, _Task) or node.func is not da.core.getter or len(node.args) != 2:
        return None
    ref, index = node.args
    source = graph.get(getattr(ref, "key", None))
    index = index.value if isinstance(index, _DataNode) else index
    if not isinstance(source, _DataNode) or not isinstance(index, tuple) or not index:
        return None
    if not isinstance(index[0], slice) or index[0].step not in (None, 1):
        return None
    return source.value, index, dict(node.kwargs)


def _merged_read(graph: dict, keys: list[tuple]) -> np.ndarray | None:
    """Read neighbouring time blocks with one call to the store, when they are plain slices.

    A Zarr store then decodes the chunks together (concurrently) instead of paying a
    round trip per chunk; ``None`` when the blocks are computed otherwise.
    """
    if _Task is None or len(keys) < 2:
        return None
    reads = [_slicing_read(graph, key) for key in keys]
    if any(r is None for r in reads):
        return None
    array, index, kwargs = reads[0]
    for (a, idx, kw), (_, prev, _) in zip(reads[1:], reads):
        if a is not array or kw != kwargs or idx[1:] != index[1:] or idx[0].start != prev[0].stop:
            return None
    merged = (slice(index[0].start, reads[-1][1][0].stop), *index[1:])
    return np.asarray(da.core.getter(array, merged, **kwargs))


def _read_into(
    out: np.ndarray, da_: xr.DataArray, window: slice, centre: Centre, std: float
) -> None:
    """Normalise steps ``window`` of a ``(time, ...)`` variable into ``out``, block by block.

    ``centre``: see :data:`Centre`; a climatology is indexed block by block, never
    repeated over the window. Whole Dask blocks are computed straight from
    the graph (for a Zarr store: its chunks, read together when they are plain slices of
    it), so reading costs little more than the store itself; blocks cut by the window go
    through Dask slicing, which reads only the needed steps where the format allows (NetCDF).
    """
    data = da_.transpose("time", ...).data
    if not isinstance(data, da.Array):
        _normalise_into(out, np.asarray(data[window]), centre, std, (slice(None),))
        return
    name, graph = _graph(data)
    edges = [np.cumsum((0, *c)) for c in data.chunks]
    t0, t1 = window.start, window.stop
    first, last = np.searchsorted(edges[0], t0, "right") - 1, np.searchsorted(edges[0], t1, "left")
    whole = [i for i in range(first, last) if edges[0][i] >= t0 and edges[0][i + 1] <= t1]
    for i in sorted({first, last - 1} - set(whole)):  # blocks the window cuts
        lo, hi = max(int(edges[0][i]), t0), min(int(edges[0][i + 1]), t1)
        part = dask.compute(data[lo:hi], scheduler="synchronous")[0]
        cut = slice(lo - t0, hi - t0)
        _normalise_into(out[cut], part, centre, std, (cut,))
    if not whole:
        return
    rows = slice(int(edges[0][whole[0]]) - t0, int(edges[0][whole[-1] + 1]) - t0)
    for index in itertools.product(*(range(len(c)) for c in data.chunks[1:])):
        region = tuple(slice(e[j], e[j + 1]) for e, j in zip(edges[1:], index))
        merged = _merged_read(graph, [(name, i, *index) for i in whole])
        if merged is not None:
            _normalise_into(out[(rows,) + region], merged, centre, std, (rows,) + region)
            continue
        for i in whole:
            block = (slice(int(edges[0][i]) - t0, int(edges[0][i + 1]) - t0),) + region
            _normalise_into(out[block], _block(name, graph, (i, *index)), centre, std, block)


def _read(
    ds: xr.Dataset, names: list[str], window: slice, norm: Normalizer, months: np.ndarray
) -> np.ndarray:
    """``[T, V, ...]`` float32 array of the normalised ``names`` over ``window`` (NaN kept);
    ``months``: the calendar month of each step of the window."""
    first = ds[names[0]]
    shape = [window.stop - window.start, len(names)]
    shape += [first.sizes[d] for d in first.dims if d != "time"]
    out = np.empty(shape, dtype=np.float32)
    for i, name in enumerate(names):
        centre: Centre = norm.scale(name)[0]
        if name in norm.climatology_:
            centre = (norm.table(name, months, tuple(shape[2:])), months - 1)
        with reading(ds[name]):
            _read_into(out[:, i], ds[name], window, centre, norm.std_[name])
    return out


def _read_sources(
    ds: xr.Dataset, names: list[str], window: slice, norm: Normalizer, months: np.ndarray
) -> np.ndarray:
    """:func:`_read`, with each source's own statistics where ``norm`` keeps them."""
    if not isinstance(norm, SourceNormalizer) or SOURCE not in ds.coords:
        return _read(ds, names, window, norm, months)
    labels = np.asarray(ds[SOURCE].values[window])
    parts = [
        _read(ds, names, slice(window.start + a, window.start + b), norm.for_source(name), months)
        for name, a, b in source_segments(labels)
    ]
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def read_window(
    view: TaskView, normalizer: Normalizer, window: slice
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised float32 inputs ``[T, V, H, W]`` and targets ``[T, Vt, H, W]`` (or ``[T, 1]``).

    Steps ``window`` (a slice of time indices) are read once, in the calling thread,
    however many variables the inputs and targets share; NaN is kept. An index view
    built for prediction (no index series) gets NaN targets. When the targets
    are the first input fields, the two arrays share memory.
    """
    downscale = view.kind == "downscale"  # its inputs are coarsened, its targets are not
    own = [] if view.is_scalar or downscale else [n for n in view.targets if n not in view.inputs]
    names = view.inputs + own
    months = view.months[window] if normalizer.climatology_ else np.empty(0, dtype=int)
    fields = view.input_fields() if downscale else view.fields
    block = _read_sources(fields, names, window, normalizer, months)
    inputs = block[:, : len(view.inputs)]
    if view.is_scalar:
        if view.index is None:  # a view for prediction has no target to read
            return inputs, np.full((inputs.shape[0], 1), np.nan, dtype=np.float32)
        name = view.targets[0]
        series = view.index.isel(time=window)
        centre = normalizer.centre(name, months)
        return inputs, ((series.values - centre) / normalizer.std_[name]).astype(np.float32)[
            :, None
        ]
    if downscale:
        return inputs, _read_sources(view.fields, view.targets, window, normalizer, months)
    if view.targets == names[: len(view.targets)]:
        return inputs, block[:, : len(view.targets)]
    return inputs, block[:, [names.index(n) for n in view.targets]]


def fill_nan(fields: np.ndarray) -> np.ndarray:
    """``fields`` ``[..., H, W]`` with NaN cells set to 0 (the normalised mean), in place.

    A field missing at a step (every cell NaN: a source without that variable) stays
    NaN, so that the network's stem gives it a valid fraction of 0 instead of being fed
    zeros it cannot tell from data.
    """
    nan = np.isnan(fields)
    missing = nan.reshape(*nan.shape[:-2], -1).all(-1)
    if missing.any():
        nan &= ~missing[..., None, None]
    np.copyto(fields, np.float32(0), where=nan)
    return fields


def patch_mask(
    seed: int, anchor: int, shape: tuple[int, int], mask_patch: int, ratio: float
) -> np.ndarray:
    """The ``reconstruct`` task's keep-mask of one sample: seeded by ``(seed, anchor)``.

    Squares of ``mask_patch`` x ``mask_patch`` cells are hidden with probability ``ratio``.
    """
    rng = np.random.default_rng((seed, anchor))
    ph, pw = -(-shape[0] // mask_patch), -(-shape[1] // mask_patch)
    keep = rng.random((ph, pw)) >= ratio
    square = np.ones((mask_patch, mask_patch), dtype=bool)
    return np.kron(keep, square)[: shape[0], : shape[1]]


def block_nbytes(view: TaskView, split: str) -> int:
    """Bytes that :class:`TaskSamples` holds for ``split`` (float32 inputs plus targets)."""
    cells = view.fields.sizes["lat"] * view.fields.sizes["lon"]
    per_step = len(view.inputs) * cells + (1 if view.is_scalar else len(view.targets) * cells)
    steps = view.steps(split)
    return int(steps[-1] - steps[0] + 1) * per_step * 4  # the window read, first to last step


class TaskSamples(Dataset):
    """The samples of one split as tensors.

    Each item is a dict with ``fields`` ``[V, history, H, W]`` (normalised, NaN as 0),
    ``target`` ``[Vt, H, W]`` (normalised, NaN where masked) or ``[1]`` for an index, and
    ``anchor`` (the time index of step t).

    Parameters
    ----------
    view, split
        The task and the split whose block is read.
    normalizer
        Fitted statistics for every input and target variable.
    mask_ratio, mask_patch, seed
        Random patch masking of the inputs, for ``reconstruct`` tasks only.
    """

    def __init__(
        self,
        view: TaskView,
        split: str,
        normalizer: Normalizer,
        *,
        mask_ratio: float = 0.5,
        mask_patch: int = 4,
        seed: int = 0,
    ) -> None:
        self.view, self.split = view, split
        self.anchors = view.anchors[split]
        steps = view.steps(split)
        self.offset = int(steps[0])
        inputs, self.targets = read_window(
            view, normalizer, slice(int(steps[0]), int(steps[-1]) + 1)
        )
        # inputs may share memory with the targets, which keep NaN: copy while filling
        self.fields = fill_nan(inputs.copy())
        del inputs
        self.mask_ratio = mask_ratio if view.kind == "reconstruct" else 0.0
        self.mask_patch, self.seed = mask_patch, seed

    def __len__(self) -> int:
        return int(self.anchors.size)

    def _mask(self, anchor: int, shape: tuple[int, int]) -> np.ndarray:
        return patch_mask(self.seed, anchor, shape, self.mask_patch, self.mask_ratio)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        anchor = int(self.anchors[i])
        a = anchor - self.offset
        fields = self.fields[a - self.view.history + 1 : a + 1].swapaxes(0, 1)
        if self.mask_ratio:
            fields = fields * self._mask(anchor, fields.shape[-2:])
        target = self.targets[int(self.view.target_index(anchor)) - self.offset]
        return {
            "fields": torch.from_numpy(np.ascontiguousarray(fields)),
            "target": torch.from_numpy(np.ascontiguousarray(target)),
            "anchor": torch.tensor(anchor),
        }


class EpochShuffleSampler(Sampler[int]):
    """A shuffling sampler whose order depends only on ``(seed, epoch)``.

    Lightning calls :meth:`set_epoch`, so a run resumed from an end-of-epoch checkpoint
    replays exactly the batches an uninterrupted run would have seen.
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())


class SourceMixSampler(Sampler[int]):
    """Draws ``len(probabilities)`` samples per epoch, with replacement, each with its
    probability (:func:`~climatune.data.sources.mixing_probabilities`): batches then mix
    the sources of a multi-source archive with the user's weights. The draws depend only
    on ``(seed, epoch)``, so a resumed run replays them.
    """

    def __init__(self, probabilities: np.ndarray, seed: int = 0) -> None:
        p = np.asarray(probabilities, dtype=float)
        self.p, self.seed, self.epoch = p / p.sum(), seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return int(self.p.size)

    def __iter__(self):
        rng = np.random.default_rng((self.seed, self.epoch))
        return iter(rng.choice(self.p.size, size=self.p.size, p=self.p).tolist())
