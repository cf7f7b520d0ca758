"""Per-variable normalisation, fitted on the training years only, out of core.

Statistics are reduced with Dask, so the archive never has to fit in memory. NaN cells
(land in an SST field) are ignored by the statistics and stay NaN after transforming:
nothing is filled silently.

Two modes: ``global`` z-scores each variable with one mean and standard deviation;
``anomaly`` first subtracts a per-cell, per-calendar-month climatology (a ``(12, ...)``
array, see :mod:`climatune.data.climatology`), then z-scores the anomalies with their
mean and standard deviation, so that the network learns departures from the seasonal
cycle.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dask
import numpy as np
import xarray as xr

from climatune.data.climatology import climatology, climatology_at
from climatune.data.io import reading
from climatune.errors import ClimatuneError

__all__ = ["Normalizer", "SourceNormalizer"]

_MIN_STD = 1e-6
# Statistics beyond this size are no physical field's (in any units): a broken artifact
_LARGEST = 1e15

#: New data have clearly shifted from stored statistics when their mean lies more than
#: ``SHIFT_LIMIT`` stored standard deviations from the stored mean: a region or period of
#: the same quantity keeps its mean inside the range the statistics were fitted on (a few
#: stds at most, for polar temperatures against a global mean), whereas anomalies against
#: absolute values lie tens of stds away (0 against 287.7 ± 11.3 K is 25).
SHIFT_LIMIT = 5.0
#: ... or when their standard deviation is over ``SPREAD_LIMIT`` times the stored one. A
#: smaller spread is no sign of a shift (a small region varies far less than the globe),
#: so only a much wider one counts. Anomalies (both statistics fitted in ``anomaly`` mode)
#: have their mean removed month by month, so their mean says nothing and their spread is
#: what the network has learnt: a spread ``SPREAD_LIMIT`` times narrower counts too (the
#: seasonal cycle and the pole-to-equator gradient are out of both).
SPREAD_LIMIT = 10.0


class Normalizer:
    """Z-score each variable with its mean and standard deviation over time and space.

    Parameters
    ----------
    variables
        Variables to fit; ``None`` means every data variable of the fitted dataset.

    Attributes
    ----------
    mean_, std_ : dict[str, float]
        Fitted statistics per variable (levels are separate variables, e.g. ``zg_500``).
        In ``anomaly`` mode, those of the anomalies.
    units_ : dict[str, str]
        Units of each variable when it was fitted.
    climatology_ : dict[str, numpy.ndarray]
        ``anomaly`` mode only: the training mean of each calendar month, a finite float32
        ``(12, *spatial)`` array per variable (0 where the training data are NaN: land
        cells, which stay NaN, and months without training data); empty in ``global`` mode.
    months_ : dict[str, list[int]]
        The calendar months each climatology was fitted on.

    Examples
    --------
    >>> from climatune.testing import create_test_data
    >>> ds = create_test_data(ntime=24)
    >>> norm = Normalizer().fit(ds.isel(time=slice(0, 12)))  # the training steps only
    >>> sorted(norm.mean_)
    ['pr', 'tas']
    >>> back = norm.inverse_transform(norm.transform(ds))
    >>> bool(abs(back.tas - ds.tas).max() < 1e-3)
    True
    """

    def __init__(self, variables: Iterable[str] | None = None) -> None:
        self.variables = list(variables) if variables is not None else None
        self.climatology_: dict[str, np.ndarray] = {}
        self.months_: dict[str, list[int]] = {}

    def fit(self, ds: xr.Dataset, *, anomaly: bool = False) -> Normalizer:
        """Fit on ``ds`` (already restricted to the training steps); returns ``self``.

        With ``anomaly``, fit the per-cell calendar-month climatology first and the mean
        and standard deviation of the departures from it (annual data: one mean per cell).
        """
        names = self.variables if self.variables is not None else list(ds.data_vars)
        lazy = {}
        for name in names:
            da = ds[name].astype("float64")
            clim = climatology(da) if anomaly else None
            if clim is not None:
                da = da - climatology_at(clim, da.time)
            lazy[name] = (
                da.mean(skipna=True).data,
                (da**2).mean(skipna=True).data,
                None if clim is None else _by_month(clim),
            )
        with reading(ds[names]):
            (computed,) = dask.compute(lazy)
        self.mean_, self.std_, self.units_, self.climatology_, self.months_ = {}, {}, {}, {}, {}
        for name, (m, m2, clim) in computed.items():
            if clim is not None:
                fitted = np.isfinite(clim).reshape(12, -1).any(axis=1)
                self.months_[name] = [int(i) + 1 for i in np.flatnonzero(fitted)]
                self.climatology_[name] = np.nan_to_num(clim, nan=0.0).astype(np.float32)
            m, m2 = float(m), float(m2)
            if not np.isfinite(m):
                raise ClimatuneError(
                    f"variable '{name}' is all NaN in the training years; drop it or choose other years"
                )
            self.mean_[name] = m
            self.std_[name] = max(float(np.sqrt(max(m2 - m * m, 0.0))), _MIN_STD)
            self.units_[name] = str(ds[name].attrs.get("units", ""))
        return self

    def table(self, name: str, months: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """``anomaly`` mode: the mean plus the climatology of ``name``, ``(12, *shape)`` float32.

        Checks that the climatology was fitted on ``shape`` cells (the data's grid) and
        covers every calendar month in ``months``.
        """
        clim = self.climatology_[name]
        if tuple(clim.shape[1:]) != tuple(shape):
            raise ClimatuneError(
                f"the climatology of '{name}' was fitted on a grid of {list(clim.shape[1:])} "
                f"cells, but these data have {list(shape)}: give data on the model's grid "
                "(regrid them, or list them in data.sources with the model's data.grid), or "
                "fine-tune on these data to refit it"
            )
        empty = sorted(set(np.unique(months).tolist()) - set(self.months_[name]))
        if empty:
            raise ClimatuneError(
                f"the training years have no data for calendar month(s) {empty} of '{name}'; "
                "extend the train block so that it covers every month"
            )
        return clim + np.float32(self.mean_[name])

    def centre(self, name: str, months: np.ndarray, shape: tuple[int, ...] = ()) -> Any:
        """What :meth:`transform` subtracts from ``name`` at steps of calendar ``months``.

        The mean (a float) in ``global`` mode; in ``anomaly`` mode the mean plus each
        step's climatology, a ``(len(months), *shape)`` float32 array (see :meth:`table`).
        """
        self._check([name])
        if name not in self.climatology_:
            return self.mean_[name]
        return self.table(name, months, shape)[np.asarray(months, dtype=np.intp) - 1]

    def _centred(self, da: xr.DataArray, name: str) -> Any:
        """:meth:`centre` of ``name`` at the steps of ``da`` (a ``(time, ...)`` variable)."""
        if name not in self.climatology_:
            return self.mean_[name]
        da = da.transpose("time", ...)
        cells = tuple(da.shape[1:])
        return xr.DataArray(
            self.centre(name, da.time.dt.month.values, cells), dims=da.dims, coords=da.coords
        )

    def _check(self, names: Iterable[str]) -> None:
        if not hasattr(self, "mean_"):
            raise RuntimeError("Normalizer is not fitted; call fit() first")
        missing = [n for n in names if n not in self.mean_]
        if missing:
            raise ClimatuneError(
                f"no normalisation statistics for {missing}; known: {sorted(self.mean_)}"
            )

    def transform(self, ds: xr.Dataset) -> xr.Dataset:
        """Return ``(x - mean) / std`` for every fitted variable present in ``ds``."""
        names = [str(n) for n in ds.data_vars if n in getattr(self, "mean_", {})]
        self._check(names)
        return ds.assign({n: (ds[n] - self._centred(ds[n], n)) / self.std_[n] for n in names})

    def inverse_transform(self, ds: xr.Dataset) -> xr.Dataset:
        """Undo :meth:`transform`, restoring physical units."""
        names = [str(n) for n in ds.data_vars if n in getattr(self, "mean_", {})]
        self._check(names)
        out = ds.assign({n: ds[n] * self.std_[n] + self._centred(ds[n], n) for n in names})
        for n in names:
            out[n].attrs = dict(ds[n].attrs)
            if self.units_.get(n):
                out[n].attrs["units"] = self.units_[n]
        return out

    def scale(self, name: str) -> tuple[float, float]:
        """``(mean, std)`` of one variable, for array code."""
        self._check([name])
        return self.mean_[name], self.std_[name]

    def shift(self, other: Normalizer, name: str) -> str | None:
        """Say how ``other``'s statistics of ``name`` have clearly shifted from these, or None.

        See :data:`SHIFT_LIMIT` and :data:`SPREAD_LIMIT` for what counts as clearly; for
        anomalies (both fitted in ``anomaly`` mode), the spread, wider or narrower.

        Examples
        --------
        >>> old = Normalizer.from_dict({"mean": {"tas": 287.7}, "std": {"tas": 11.3}})
        >>> new = Normalizer.from_dict({"mean": {"tas": 0.0}, "std": {"tas": 1.0}})
        >>> old.shift(new, "tas")
        'mean 0 ± 1 against the stored 287.7 ± 11.3 (25.5 stored stds apart)'
        """
        mean, std = self.scale(name)
        new_mean, new_std = other.scale(name)
        if name in self.climatology_ and name in other.climatology_:
            ratio = max(new_std / std, std / new_std)
            if ratio <= SPREAD_LIMIT:
                return None
            how = "wider" if new_std > std else "narrower"
            return (
                f"anomalies {new_std:.3g} in spread against the stored {std:.3g} "
                f"({ratio:.1f}x {how})"
            )
        apart, wider = abs(new_mean - mean) / std, new_std / std
        if apart <= SHIFT_LIMIT and wider <= SPREAD_LIMIT:
            return None
        why = (
            f"{apart:.1f} stored stds apart" if apart > SHIFT_LIMIT else f"{wider:.1f}x the spread"
        )
        return (
            f"mean {new_mean:.4g} ± {new_std:.3g} against the stored {mean:.4g} ± {std:.3g} ({why})"
        )

    def merge(self, other: Normalizer, refit: Iterable[str]) -> Normalizer:
        """Keep these statistics, but take ``refit`` variables (and any new ones) from ``other``.

        The climatology always comes from ``other``: it belongs to the data (region, model,
        period), whereas the network has learnt the anomalies and their scale.
        """
        out = Normalizer()
        out.mean_, out.std_, out.units_ = dict(self.mean_), dict(self.std_), dict(self.units_)
        out.climatology_, out.months_ = dict(other.climatology_), dict(other.months_)
        for name in other.mean_:
            if name in set(refit) or name not in self.mean_:
                out.mean_[name] = other.mean_[name]
                out.std_[name] = other.std_[name]
                out.units_[name] = other.units_[name]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able statistics for the artifact; the climatology arrays go with the weights
        (:attr:`climatology_`), the JSON gives their variables' fitted months."""
        out: dict[str, Any] = {"mean": self.mean_, "std": self.std_, "units": self.units_}
        if self.climatology_:
            out["climatology"] = self.months_
        return out

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], climatology: dict[str, np.ndarray] | None = None
    ) -> Normalizer:
        """Rebuild a fitted normaliser from :meth:`to_dict` output and its climatology arrays."""
        out = cls()
        try:
            out.mean_ = {k: float(v) for k, v in data["mean"].items()}
            out.std_ = {k: float(v) for k, v in data["std"].items()}
            out.units_ = {k: str(v) for k, v in data.get("units", {}).items()}
            out.months_ = {
                str(k): [int(m) for m in v] for k, v in data.get("climatology", {}).items()
            }
        except (KeyError, AttributeError, TypeError, ValueError) as exc:
            raise ClimatuneError(
                f"normalisation statistics in the artifact are malformed: {exc}"
            ) from exc
        out.climatology_ = {
            k: np.asarray(v, dtype=np.float32) for k, v in (climatology or {}).items()
        }
        named = sorted(out.months_)
        if named != sorted(out.climatology_) or not set(named) <= set(out.mean_):
            raise ClimatuneError(
                f"the artifact names climatologies of {named} but holds arrays of "
                f"{sorted(out.climatology_)} (statistics of {sorted(out.mean_)}): re-export the model"
            )
        for name, clim in out.climatology_.items():
            months = set(out.months_[name])
            if (
                clim.ndim < 1
                or clim.shape[0] != 12
                or not np.isfinite(clim).all()
                or not (months and months <= set(range(1, 13)))
            ):
                raise ClimatuneError(
                    f"the climatology of '{name}' in the artifact ({list(clim.shape)}, months "
                    f"{sorted(months)}) is not 12 finite calendar months: re-export the model"
                )
        if set(out.mean_) != set(out.std_):
            raise ClimatuneError(
                "normalisation statistics in the artifact are malformed: means for "
                f"{sorted(out.mean_)} but standard deviations for {sorted(out.std_)}"
            )
        for name in out.mean_:
            mean, std = out.mean_[name], out.std_[name]
            if not (0 < std <= _LARGEST and abs(mean) <= _LARGEST):  # NaN fails too
                raise ClimatuneError(
                    f"normalisation statistics of '{name}' in the artifact cannot be right "
                    f"(mean {mean}, std {std}); a mean must be finite and a std finite and "
                    f"positive, both at most {_LARGEST:g} in size: re-export the model"
                )
        if "sources" in data and cls is Normalizer:
            return SourceNormalizer.with_sources(out, data["sources"])
        return out


class SourceNormalizer(Normalizer):
    """Pooled statistics (what data of no known source is normalised with) plus one
    :class:`Normalizer` per source of a multi-source archive (``sources_``), global mode.

    Reads of steps labelled with a source (the ``source`` coordinate of
    :func:`~climatune.data.sources.open_sources`) use that source's statistics, for the
    variables it has.
    """

    def __init__(self, variables: Iterable[str] | None = None) -> None:
        super().__init__(variables)
        self.sources_: dict[str, Normalizer] = {}

    def for_source(self, name: str) -> Normalizer:
        """The statistics that steps of source ``name`` are normalised with."""
        own = self.sources_.get(name)
        if own is None:
            return self
        out = Normalizer()
        out.mean_, out.std_, out.units_ = dict(self.mean_), dict(self.std_), dict(self.units_)
        out.mean_.update(own.mean_)
        out.std_.update(own.std_)
        return out

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["sources"] = {k: {"mean": v.mean_, "std": v.std_} for k, v in self.sources_.items()}
        return out

    @classmethod
    def with_sources(cls, pooled: Normalizer, sources: dict[str, Any]) -> SourceNormalizer:
        """``pooled`` plus per-source statistics read from :meth:`to_dict` output."""
        out = cls()
        out.__dict__.update(pooled.__dict__)
        out.sources_ = {}
        if not isinstance(sources, dict):
            raise ClimatuneError("normalisation statistics in the artifact are malformed: sources")
        for name, stats in sources.items():
            own = Normalizer.from_dict({"mean": stats.get("mean", {}), "std": stats.get("std", {})})
            out.sources_[str(name)] = own
        return out


def _by_month(clim: xr.DataArray) -> Any:
    """A lazy ``(12, ...)`` array of ``clim`` (from :func:`climatology`), NaN where a calendar
    month had no training data; annual data (no ``month`` dimension) repeat one mean."""
    if "month" not in clim.dims:
        return clim.expand_dims(month=12).data
    return clim.reindex(month=np.arange(1, 13)).transpose("month", ...).data
