"""Statistical baselines: same task view, same split, same metrics as the networks.

Each baseline is a small estimator: ``__init__`` stores arguments, ``fit(view)`` learns
from the training samples only (attributes ending in ``_``), and ``predict(view, split)``
returns a Dataset shaped exactly like ``view.truth(split)``, in physical units. Cells
that are NaN in the truth are NaN in the predictions; nothing is filled.

Examples
--------
>>> baselines_for("downscale")
['climatology', 'linear_trend', 'ridge', 'bilinear', 'bilinear_residual']
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar, TypeVar

import cftime
import numpy as np
import xarray as xr

from climatune.errors import ClimatuneError, closest
from climatune.evaluation.climatology import (
    climatology,
    climatology_at,
    is_sub_annual,
    view_climatology,
)

if TYPE_CHECKING:
    from climatune.data.view import TaskView

__all__ = [
    "Baseline",
    "BASELINES",
    "register_baseline",
    "baselines_for",
    "make_baseline",
    "Climatology",
    "Persistence",
    "DampedPersistence",
    "RecentMean",
    "LinearTrend",
    "Ridge",
    "Bilinear",
    "BilinearResidual",
]

BASELINES: dict[str, type[Baseline]] = {}
BaselineT = TypeVar("BaselineT", bound="Baseline")

_CHUNK = 2_000_000  # floats per block of the per-cell design matrix (bounds memory)


def register_baseline(cls: type[BaselineT]) -> type[BaselineT]:
    """Class decorator: add a baseline to :data:`BASELINES` under ``cls.name``."""
    BASELINES[cls.name] = cls
    return cls


def baselines_for(kind: str, lead: int | None = None) -> list[str]:
    """Names of the baselines that apply to a task ``kind``, in registration order.

    With ``lead`` given, baselines that would read the target itself at that lead (see
    :meth:`Baseline.refusal`) are left out.
    """
    return [
        name
        for name, cls in BASELINES.items()
        if kind in cls.kinds and (lead is None or cls.refusal(kind, lead) is None)
    ]


def make_baseline(name: str, **kwargs: object) -> Baseline:
    """Create the baseline called ``name`` with constructor arguments ``kwargs``."""
    if name not in BASELINES:
        raise ClimatuneError(
            f"unknown baseline '{name}'{closest(name, BASELINES)}; choose from: {', '.join(BASELINES)}"
        )
    return BASELINES[name](**kwargs)


class Baseline(ABC):
    """Abstract base: subclasses set ``name`` and ``kinds``, implement ``_predict`` and, when
    they learn anything, ``_fit``."""

    name: ClassVar[str] = ""
    kinds: ClassVar[tuple[str, ...]] = ()
    reads_target_past: ClassVar[bool] = False
    """Whether predictions read the target series' own values up to the anchor step."""

    @classmethod
    def refusal(cls, kind: str, lead: int) -> str | None:
        """Why the baseline does not apply to a ``kind`` task at ``lead``, or ``None``.

        No baseline may see the target: one that reads the target series' values up to
        the anchor step t needs t strictly before the target time, so ``lead`` >= 1.
        """
        if kind not in cls.kinds:
            return (
                f"baseline '{cls.name}' does not apply to {kind} tasks (only {', '.join(cls.kinds)}); "
                f"the {kind} baselines are: {', '.join(baselines_for(kind))}"
            )
        if cls.reads_target_past and lead < 1:
            return (
                f"baseline '{cls.name}' does not apply at lead 0: it reads the target's own "
                "values up to the anchor step, which is then the target itself; use task.lead >= 1"
            )
        return None

    def fit(self, view: TaskView) -> Baseline:
        """Learn from the training samples of ``view``; returns ``self``."""
        self._check_kind(view)
        self._fit(view)
        self.kind_ = view.kind
        return self

    def predict(self, view: TaskView, split: str) -> xr.Dataset:
        """Predictions for the samples of ``split``, shaped like ``view.truth(split)``."""
        if not hasattr(self, "kind_"):
            raise RuntimeError(f"baseline '{self.name}' is not fitted; call fit(view) first")
        self._check_kind(view)
        truth = view.truth(split)
        values = self._predict(view, np.asarray(view.anchors[split]), truth)
        out = {}
        for name, y in truth.data_vars.items():
            y_t = y.transpose("time", ...)
            pred = y_t.copy(data=np.asarray(values[name], dtype=float)).transpose(*y.dims)
            out[name] = pred.where(y.notnull())
        return xr.Dataset(out, attrs={"model": self.name})

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_"))
        return f"{type(self).__name__}({args})"

    def _check_kind(self, view: TaskView) -> None:
        reason = self.refusal(view.kind, view.lead)
        if reason is not None:
            raise ClimatuneError(reason)

    def _fit(self, view: TaskView) -> None:  # stateless baselines need nothing
        return None

    @abstractmethod
    def _predict(
        self, view: TaskView, anchors: np.ndarray, truth: xr.Dataset
    ) -> dict[str, np.ndarray]:
        """Arrays per target, time first, the other dims in the truth's order."""


def _values(ds: xr.Dataset | xr.DataArray, name: str, truth: xr.Dataset) -> np.ndarray:
    """``ds[name]`` as numpy, time first, then the other dims in the truth's order."""
    da = ds[name] if isinstance(ds, xr.Dataset) else ds
    return da.transpose(*truth[name].transpose("time", ...).dims).values


def _gather(ds: xr.Dataset, steps: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """``ds[name]`` at the integer time ``steps`` (any shape), reading each step once."""
    unique, inverse = np.unique(steps, return_inverse=True)
    sub = ds[names].isel(time=unique)
    return {n: sub[n].transpose("time", ...).values[inverse.reshape(steps.shape)] for n in names}


@register_baseline
class Climatology(Baseline):
    """The training-period mean per calendar month (or per year for annual data)."""

    name = "climatology"
    kinds = ("forecast", "downscale", "index", "reconstruct")

    def _fit(self, view: TaskView) -> None:
        self.climatology_ = view_climatology(view)

    def _predict(
        self, view: TaskView, anchors: np.ndarray, truth: xr.Dataset
    ) -> dict[str, np.ndarray]:
        clim = climatology_at(self.climatology_, truth.time)
        return {n: _values(clim, n, truth) for n in truth.data_vars}


def _calendar_groups(times: xr.DataArray, sub_annual: bool) -> np.ndarray:
    """Calendar month of each time (sub-annual data), or 0 for annual data."""
    return np.asarray(times.dt.month) if sub_annual else np.zeros(times.size, dtype=int)


class _AnomalyPersistence(Baseline):
    """Base of the persistence family: the target's climatology plus a forecast of its anomaly.

    The anomaly of a step is its value minus the training climatology of its calendar
    month (sub-annual data) or the training mean (annual data), so persisting it across a
    seasonal cycle carries the departure, not the season. For annual data, persisting the
    anomaly is persisting the value. Only the target's own steps up to the anchor are read.
    """

    kinds = ("forecast", "index")
    reads_target_past = True

    def _fit(self, view: TaskView) -> None:
        self.climatology_ = view_climatology(view)

    def _anomaly(
        self, view: TaskView, steps: np.ndarray, names: list[str]
    ) -> dict[str, np.ndarray]:
        """Anomalies of ``names`` at the integer time ``steps`` (any shape), time first."""
        unique, inverse = np.unique(steps, return_inverse=True)
        sub = view.target_data()[names].isel(time=unique)
        anomaly = sub - climatology_at(self.climatology_, sub.time)
        return {
            n: anomaly[n].transpose("time", ...).values[inverse.reshape(steps.shape)] for n in names
        }

    def _predict(
        self, view: TaskView, anchors: np.ndarray, truth: xr.Dataset
    ) -> dict[str, np.ndarray]:
        clim = climatology_at(self.climatology_, truth.time)
        forecast = self._anomaly_forecast(view, anchors, truth)
        return {n: _values(clim, n, truth) + forecast[n] for n in truth.data_vars}

    @abstractmethod
    def _anomaly_forecast(
        self, view: TaskView, anchors: np.ndarray, truth: xr.Dataset
    ) -> dict[str, np.ndarray]:
        """The forecast anomaly of each target at the target times (time first)."""


@register_baseline
class Persistence(_AnomalyPersistence):
    """Climatology of the target time plus the anomaly at the anchor step t."""

    name = "persistence"

    def _anomaly_forecast(
        self, view: TaskView, anchors: np.ndarray, truth: xr.Dataset
    ) -> dict[str, np.ndarray]:
        return self._anomaly(view, anchors, list(truth.data_vars))


@register_baseline
class DampedPersistence(_AnomalyPersistence):
    """Climatology plus ρ × the anomaly at t: the standard reference forecast.

    ρ is the least-squares damping of the anomaly from the anchor to the target, fitted per
    cell and per calendar month of the target (one value for annual data) on the training
    samples, so it is the lag-``lead`` regression of the data themselves, kept within
    [-1, 1]: a damping, never an amplification. With a year or two of training data a
    month has one or two samples whose anomalies, taken from a climatology fitted on those
    same samples, are near zero, and their ratio would be any number (RMSE of hundreds of
    K on the synthetic example's shortest curve fraction).
    """

    name = "damped_persistence"

    def _fit(self, view: TaskView) -> None:
        super()._fit(view)
        anchors = np.asarray(view.anchors["train"])
        times = view.fields.time.isel(time=view.target_index(anchors))
        self.sub_annual_ = "month" in self.climatology_.dims
        groups = _calendar_groups(times, self.sub_annual_)
        self.groups_, index = np.unique(groups, return_inverse=True)
        onehot = np.eye(self.groups_.size)[index]  # (n, G)
        names = list(self.climatology_.data_vars)
        now = self._anomaly(view, anchors, names)
        later = self._anomaly(view, view.target_index(anchors), names)
        self.rho_ = {}
        for name in names:
            a0, a1 = now[name].reshape(anchors.size, -1), later[name].reshape(anchors.size, -1)
            ok = np.isfinite(a0) & np.isfinite(a1)
            a0, a1 = np.where(ok, a0, 0.0), np.where(ok, a1, 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                rho = (onehot.T @ (a0 * a1)) / (onehot.T @ (a0 * a0))  # (G, cells)
            self.rho_[name] = np.clip(np.where(np.isfinite(rho), rho, 0.0), -1.0, 1.0)

    def _anomaly_forecast(
        self, view: TaskView, anchors: np.ndarray, truth: xr.Dataset
    ) -> dict[str, np.ndarray]:
        groups = _calendar_groups(truth.time, self.sub_annual_)
        index = np.searchsorted(self.groups_, groups)
        if np.any(self.groups_[np.minimum(index, self.groups_.size - 1)] != groups):
            raise ClimatuneError(
                "damped_persistence: the training samples cover no target in some calendar "
                "month of this split; extend the train block"
            )
        anomaly = self._anomaly(view, anchors, list(truth.data_vars))
        out = {}
        for name, a in anomaly.items():
            rho = self.rho_[name][index].reshape(a.shape)
            out[name] = rho * a
        return out


@register_baseline
class RecentMean(_AnomalyPersistence):
    """Climatology plus the mean anomaly of the last ``k`` steps up to the anchor.

    Only steps inside the split's own block are read, so the first samples of a block
    average fewer steps. Missing (NaN) steps are left out of a cell's mean.
    """

    name = "recent_mean"

    def __init__(self, k: int = 3) -> None:
        self.k = k

    def _fit(self, view: TaskView) -> None:
        if int(self.k) != self.k or self.k < 1:
            raise ClimatuneError(f"recent_mean needs k >= 1 steps, got k={self.k}")
        self.k_ = int(self.k)
        super()._fit(view)

    def _anomaly_forecast(
        self, view: TaskView, anchors: np.ndarray, truth: xr.Dataset
    ) -> dict[str, np.ndarray]:
        start = int(anchors.min()) - (view.history - 1)
        steps = anchors[:, None] - np.arange(self.k_)[None, :]
        inside = steps >= start
        data = self._anomaly(view, np.where(inside, steps, anchors[:, None]), list(truth.data_vars))
        out = {}
        for name, x in data.items():
            ok = np.isfinite(x) & inside.reshape(inside.shape + (1,) * (x.ndim - 2))
            with np.errstate(invalid="ignore", divide="ignore"):
                out[name] = np.where(ok, x, 0.0).sum(1) / ok.sum(1)
        return out


def _days(times: xr.DataArray) -> np.ndarray:
    """Times as days since a fixed origin, for any calendar."""
    values = np.asarray(times.values)
    if np.issubdtype(values.dtype, np.datetime64):
        return (values - np.datetime64("1970-01-01")) / np.timedelta64(1, "D")
    calendar = values.flat[0].calendar
    return np.asarray(
        cftime.date2num(values, "days since 0001-01-01", calendar=calendar), dtype=float
    )


@register_baseline
class LinearTrend(Baseline):
    """A least-squares line in time per cell, fitted on the training period.

    For sub-annual data each calendar month keeps its own mean and the cells share one
    slope across months (seasonal means plus a trend), so a seasonal cycle does not
    bias the slope. For annual data this is the ordinary straight line.
    """

    name = "linear_trend"
    kinds = ("forecast", "downscale", "index")

    def _fit(self, view: TaskView) -> None:
        steps = view.steps("train")
        data = view.target_data().isel(time=steps)
        self.sub_annual_ = is_sub_annual(data.time)
        groups = _calendar_groups(data.time, self.sub_annual_)
        self.groups_, index = np.unique(groups, return_inverse=True)
        onehot = np.eye(self.groups_.size)[index]  # (n, G)
        t = _days(data.time)
        self.origin_ = float(t.mean())
        t = t - self.origin_
        self.mean_time_, self.mean_, self.slope_ = {}, {}, {}
        for name in view.targets:
            y = data[name].transpose("time", ...).values
            y = y.reshape(y.shape[0], -1)
            ok = np.isfinite(y)
            y0 = np.where(ok, y, 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                count = onehot.T @ ok
                t_bar = (onehot.T @ (ok * t[:, None])) / count  # (G, C)
                y_bar = (onehot.T @ y0) / count
                dt = np.where(ok, t[:, None] - t_bar[index], 0.0)
                dy = np.where(ok, y0 - y_bar[index], 0.0)
                slope = (dt * dy).sum(0) / (dt * dt).sum(0)
            self.mean_time_[name], self.mean_[name], self.slope_[name] = t_bar, y_bar, slope

    def _predict(
        self, view: TaskView, anchors: np.ndarray, truth: xr.Dataset
    ) -> dict[str, np.ndarray]:
        groups = _calendar_groups(truth.time, self.sub_annual_)
        missing = sorted(set(groups.tolist()) - set(self.groups_.tolist()))
        if missing:
            raise ClimatuneError(
                f"the training period has no data for calendar month(s) {missing}; extend the train block"
            )
        index = np.searchsorted(self.groups_, groups)
        t = _days(truth.time) - self.origin_
        out = {}
        for name in truth.data_vars:
            line = self.mean_[name][index] + self.slope_[name] * (
                t[:, None] - self.mean_time_[name][index]
            )
            out[name] = line.reshape(truth[name].transpose("time", ...).shape)
        return out


def _input_blocks(
    view: TaskView, anchors: np.ndarray
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """The network's inputs for ``anchors``: ``(steps, V, C)`` values, the sample→steps
    index ``(n, history)`` and the grid shape; features of a sample are its history × V."""
    src = view.input_fields()[view.inputs]
    steps = anchors[:, None] + np.arange(1 - view.history, 1)[None, :]
    unique, inverse = np.unique(steps, return_inverse=True)
    sub = src.isel(time=unique)
    arr = np.stack([sub[v].transpose("time", "lat", "lon").values for v in view.inputs], axis=1)
    grid = arr.shape[2:]
    return arr.reshape(arr.shape[0], arr.shape[1], -1), inverse.reshape(steps.shape), grid


def _cell_chunks(n: int, p: int, cells: int) -> Iterator[slice]:
    size = max(1, _CHUNK // max(1, n * p))
    for start in range(0, cells, size):
        yield slice(start, min(cells, start + size))


def _design(arr: np.ndarray, inverse: np.ndarray, cells: slice) -> np.ndarray:
    """``(n, history * V, c)`` features of the samples at the ``cells``."""
    x = arr[:, :, cells][inverse]  # (n, h, V, c)
    return x.reshape(x.shape[0], -1, x.shape[-1])


def _fit_cells(
    x: np.ndarray, y: np.ndarray, alpha: float | None, group: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """Ridge per cell on standardised features, by the batched normal equations.

    Features and target are centred per ``group`` (the calendar month of each sample's
    target, ``0..G-1``; one group when None), so each month has its own intercept and the
    slopes fit the departures from it. A feature that is NaN at every training sample of
    a cell is dropped there; a sample with a NaN in a kept feature or in the target is
    left out of that cell's fit. With ``alpha`` None, each cell takes the penalty of least
    generalised cross-validation error (:func:`_gcv_penalty`); otherwise ``alpha``.

    Returns the fit, ``keep (P, c)``, ``mean (G, P, c)``, ``std (P, c)``, ``coef (P, c)``
    and ``y_bar (G, c)`` (a group with no valid sample in a cell has NaN means there), and
    each cell's generalised cross-validation error ``(c,)``.
    """
    group = np.zeros(x.shape[0], dtype=int) if group is None else group
    onehot = np.eye(int(group.max()) + 1)[group]  # (n, G)
    finite = np.isfinite(x)
    keep = finite.any(0)  # (P, c)
    ok = (finite | ~keep).all(1) & np.isfinite(y)  # (n, c)
    use = ok[:, None, :] & keep
    per_group = onehot.T @ ok  # (G, c)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.einsum("ng,npc->gpc", onehot, np.where(use, x, 0.0)) / per_group[:, None, :]
        dev = np.where(use, x - mean[group], 0.0)
        std = np.sqrt((dev**2).sum(0) / ok.sum(0))
        std = np.where(std > 0, std, 1.0)
        z = dev / std
        y_bar = (onehot.T @ np.where(ok, y, 0.0)) / per_group
    dy = np.where(ok, y - y_bar[group], 0.0)
    lam, vec = np.linalg.eigh(np.einsum("npc,nqc->cpq", z, z))  # (c, P), (c, P, P)
    proj = np.einsum("cpk,npc,nc->ck", vec, z, dy)
    dof = ok.sum(0) - (per_group > 0).sum(0)  # less one intercept per group
    penalty, gcv = _gcv_penalty(lam, proj, (dy**2).sum(0), dof, alpha)
    coef = np.einsum("cpk,ck->cp", vec, proj / (np.clip(lam, 0, None) + penalty[:, None])).T
    return (keep, mean, std, coef, y_bar), gcv


def _gcv_penalty(
    lam: np.ndarray, proj: np.ndarray, tss: np.ndarray, dof: np.ndarray, alpha: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, the ridge penalty of least generalised cross-validation error, and that
    error (the penalty ``alpha`` and its error, when given).

    ``lam`` are the eigenvalues of each cell's Gram matrix and ``proj`` the projections of
    its centred target on the eigenvectors (``V.T @ Z.T @ y``); ``tss`` its sum of squares
    and ``dof`` its residual degrees of freedom before the slopes. The penalties tried
    span ten decades below and three above the mean eigenvalue.
    """
    lam = np.clip(lam, 0.0, None)
    if alpha is None:
        alphas = np.maximum(lam.mean(1), 1e-12)[:, None] * 10.0 ** np.arange(-10.0, 4.0)
    else:
        alphas = np.full((lam.shape[0], 1), float(alpha))  # (c, A)
    shrink = lam[:, None, :] / (lam[:, None, :] + alphas[:, :, None])  # (c, A, P)
    explained = np.where(lam > 0, proj**2 / np.where(lam > 0, lam, 1.0), 0.0)  # (c, P)
    rss = np.clip(tss[:, None] - ((1 - (1 - shrink) ** 2) * explained[:, None]).sum(-1), 0, None)
    left = dof[:, None] - shrink.sum(-1)
    gcv = np.where(left > 0, rss / np.where(left > 0, left, 1.0) ** 2, np.inf)
    best = np.argmin(gcv, axis=1)
    cells = np.arange(alphas.shape[0])
    return alphas[cells, best], gcv[cells, best]


def _predict_cells(
    x: np.ndarray,
    keep: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    coef: np.ndarray,
    y_bar: np.ndarray,
    group: np.ndarray | None = None,
) -> np.ndarray:
    group = np.zeros(x.shape[0], dtype=int) if group is None else group
    z = np.where(keep, (x - mean[group]) / std, 0.0)
    return np.einsum("npc,pc->nc", z, coef) + y_bar[group]


def _gcv_ridge(
    u: np.ndarray, s: np.ndarray, dy: np.ndarray, intercepts: int = 1
) -> tuple[np.ndarray, float]:
    """Ridge coefficients on principal-component scores ``u * s``, with the penalty chosen
    by generalised cross-validation over a log grid relative to the leading variance, and
    that error; ``intercepts`` is the number of group means already taken from ``dy``."""
    n = dy.size
    if s.size == 0:  # constant inputs: the index mean is all there is
        left = n - intercepts
        return s, float(np.sum(dy**2) / left**2) if left > 0 else np.inf
    uy = u.T @ dy
    alphas = s[0] ** 2 * 10.0 ** np.arange(-10.0, 3.0)
    shrink = s[None, :] ** 2 / (s[None, :] ** 2 + alphas[:, None])  # (A, k)
    rss = ((dy[:, None] - u @ (shrink * uy).T) ** 2).sum(0)
    dof = n - intercepts - shrink.sum(1)
    gcv = np.where(dof > 0, rss / np.where(dof > 0, dof, 1.0) ** 2, np.inf)
    best = int(np.argmin(gcv))
    return s * uy / (s**2 + alphas[best]), float(gcv[best])


@register_baseline
class Ridge(Baseline):
    """Linear regression on the inputs the network sees (history × input variables).

    Fields: one ridge per grid cell from that cell's inputs to each target there, on
    standardised features, with the penalty chosen per cell by generalised
    cross-validation (or a fixed ``alpha``). Index: one ridge from the flattened
    input fields, truncated to at most ``n_components`` principal components, with the
    penalty chosen by generalised cross-validation.

    Sub-annual data may take one intercept per calendar month of the target, with the
    features centred per month too, so that the slopes fit departures from the seasonal
    cycle: a linear fit of raw monthly values spends its weights on the cycle and
    amplifies the inputs' noise through it (1.60 K against the climatology's 1.24 K on
    the synthetic example; 1.11 K per month). Each cell (or the index) takes whichever of
    the two fits has the lower generalised cross-validation error (``per_month=False``:
    always the single intercept).
    """

    name = "ridge"
    kinds = ("forecast", "downscale", "index")

    def __init__(
        self, alpha: float | None = None, n_components: int = 50, per_month: bool = True
    ) -> None:
        self.alpha = alpha
        self.n_components = n_components
        self.per_month = per_month

    def _groups(self, view: TaskView, anchors: np.ndarray) -> np.ndarray:
        """Index into ``groups_`` of each sample's target calendar month (0 for annual)."""
        times = view.fields.time.isel(time=view.target_index(anchors))
        groups = _calendar_groups(times, is_sub_annual(view.fields.time))
        index = np.minimum(np.searchsorted(self.groups_, groups), self.groups_.size - 1)
        if self.per_month_.any() and np.any(self.groups_[index] != groups):
            raise ClimatuneError(
                "ridge: the training samples cover no target in some calendar month of this "
                "split; extend the train block"
            )
        return index

    def _fit(self, view: TaskView) -> None:
        anchors = np.asarray(view.anchors["train"])
        times = view.fields.time.isel(time=view.target_index(anchors))
        months = _calendar_groups(times, is_sub_annual(view.fields.time))
        self.groups_, group = np.unique(months, return_inverse=True)
        arr, inverse, _ = _input_blocks(view, anchors)
        target = view.target_data().isel(time=view.target_index(anchors))
        if view.is_scalar:
            x = _design(arr, inverse, slice(None))
            self._fit_index(x, target[view.targets[0]].values, group)
            return
        cells = arr.shape[-1]
        self.coef_, chosen = {}, []
        for name in view.targets:
            y = target[name].transpose("time", "lat", "lon").values.reshape(anchors.size, -1)
            chunks = _cell_chunks(anchors.size, arr.shape[1] * view.history, cells)
            parts = [self._fit_chunk(_design(arr, inverse, c), y[:, c], group) for c in chunks]
            self.coef_[name] = tuple(np.concatenate(p, axis=-1) for p in zip(*parts))
            chosen.append(self.coef_[name][-1])
        self.per_month_ = np.concatenate(chosen)

    def _fit_chunk(self, x: np.ndarray, y: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, ...]:
        """The cells' fits with one intercept, or one per month where that validates better:
        ``keep, mean, std, coef, y_bar`` as :func:`_fit_cells` gives them, and the choice."""
        n_groups = self.groups_.size
        (keep, mean, std, coef, y_bar), gcv = _fit_cells(x, y, self.alpha)
        mean, y_bar = np.repeat(mean, n_groups, 0), np.repeat(y_bar, n_groups, 0)
        per_month = np.zeros(y.shape[1], dtype=bool)
        if n_groups > 1 and self.per_month:
            (_, m_mean, m_std, m_coef, m_bar), m_gcv = _fit_cells(x, y, self.alpha, group)
            per_month = m_gcv < gcv
            mean = np.where(per_month, m_mean, mean)
            std, coef = np.where(per_month, m_std, std), np.where(per_month, m_coef, coef)
            y_bar = np.where(per_month, m_bar, y_bar)
        return keep, mean, std, coef, y_bar, per_month

    def _fit_index(self, x: np.ndarray, y: np.ndarray, group: np.ndarray) -> None:
        x = x.reshape(x.shape[0], -1)
        ok = np.isfinite(y)
        self.keep_ = np.isfinite(x[ok]).all(0)
        x, y, group = x[ok][:, self.keep_], y[ok], group[ok]
        if y.size < 3 or not self.keep_.any():
            raise ClimatuneError(
                f"ridge needs at least 3 training samples with finite inputs and index; it has {y.size}"
            )
        fits = [self._index_fit(x, y, np.zeros_like(group), 1)]
        if self.groups_.size > 1 and self.per_month:
            fits.append(self._index_fit(x, y, group, self.groups_.size))
        best = min(range(len(fits)), key=lambda k: fits[k][-1])
        self.mean_, self.std_, self.components_, self.coef_, self.intercept_, _ = fits[best]
        self.per_month_ = np.array([best == 1])

    def _index_fit(self, x: np.ndarray, y: np.ndarray, group: np.ndarray, n_groups: int) -> tuple:
        """``mean (G, F), std, components, coef, intercept (G,)`` and the fit's GCV error,
        centred per group (one group: a single intercept)."""
        onehot = np.eye(n_groups)[group]
        per_group = onehot.sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (onehot.T @ x) / per_group[:, None]
            intercept = (onehot.T @ y) / per_group
        dev = x - mean[group]
        std = dev.std(0)
        std = np.where(std > 0, std, 1.0)
        u, s, vt = np.linalg.svd(dev / std, full_matrices=False)
        k = int(min(self.n_components, np.sum(s > s[0] * 1e-10))) if s.size else 0
        coef, gcv = _gcv_ridge(u[:, :k], s[:k], y - intercept[group], int((per_group > 0).sum()))
        mean = np.broadcast_to(mean, (self.groups_.size, mean.shape[1]))
        intercept = np.broadcast_to(intercept, (self.groups_.size,))
        return mean, std, vt[:k], coef, intercept, gcv

    def _predict(
        self, view: TaskView, anchors: np.ndarray, truth: xr.Dataset
    ) -> dict[str, np.ndarray]:
        group = self._groups(view, anchors)
        arr, inverse, grid = _input_blocks(view, anchors)
        if view.is_scalar:
            x = _design(arr, inverse, slice(None)).reshape(anchors.size, -1)[:, self.keep_]
            scores = ((x - self.mean_[group]) / self.std_) @ self.components_.T
            return {view.targets[0]: scores @ self.coef_ + self.intercept_[group]}
        out = {}
        for name in truth.data_vars:
            keep, mean, std, coef, y_bar, _ = self.coef_[name]
            pred = np.concatenate(
                [
                    _predict_cells(
                        _design(arr, inverse, c),
                        keep[:, c],
                        mean[:, :, c],
                        std[:, c],
                        coef[:, c],
                        y_bar[:, c],
                        group,
                    )
                    for c in _cell_chunks(anchors.size, arr.shape[1] * view.history, arr.shape[-1])
                ],
                axis=-1,
            )
            grid_pred = xr.DataArray(pred.reshape(anchors.size, *grid), dims=("time", "lat", "lon"))
            out[name] = _values(grid_pred, name, truth)
        return out


def _bilinear_targets(view: TaskView) -> xr.Dataset:
    missing = [n for n in view.targets if n not in view.inputs]
    if missing:
        raise ClimatuneError(
            f"bilinear baselines interpolate the inputs, but targets {missing} are not inputs"
        )
    return view.input_fields()[view.targets]


@register_baseline
class Bilinear(Baseline):
    """The coarse field interpolated bilinearly back to the fine grid."""

    name = "bilinear"
    kinds = ("downscale",)

    def _predict(
        self, view: TaskView, anchors: np.ndarray, truth: xr.Dataset
    ) -> dict[str, np.ndarray]:
        coarse = _bilinear_targets(view).isel(time=view.target_index(anchors))
        return {n: _values(coarse, n, truth) for n in truth.data_vars}


@register_baseline
class BilinearResidual(Baseline):
    """Bilinear plus the training period's mean fine − bilinear residual per cell.

    The residual is averaged per calendar month for sub-annual data. This is the
    spatial-disaggregation step of BCSD: the statistician's real downscaling baseline.
    """

    name = "bilinear_residual"
    kinds = ("downscale",)

    def _fit(self, view: TaskView) -> None:
        steps = view.steps("train")
        residual = view.fields[view.targets] - _bilinear_targets(view)
        self.residual_ = climatology(residual.isel(time=steps))

    def _predict(
        self, view: TaskView, anchors: np.ndarray, truth: xr.Dataset
    ) -> dict[str, np.ndarray]:
        coarse = _bilinear_targets(view).isel(time=view.target_index(anchors))
        fine = coarse + climatology_at(self.residual_, coarse.time)
        return {n: _values(fine, n, truth) for n in truth.data_vars}
