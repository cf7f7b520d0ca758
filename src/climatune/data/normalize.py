"""Per-variable normalisation, fitted on the training years only, out of core.

Statistics are reduced with Dask, so the archive never has to fit in memory. NaN cells
(land in an SST field) are ignored by the statistics and stay NaN after transforming:
nothing is filled silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dask
import numpy as np
import xarray as xr

from climatune.data.io import reading
from climatune.errors import ClimatuneError

__all__ = ["Normalizer"]

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
#: so only a much wider one counts.
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
    units_ : dict[str, str]
        Units of each variable when it was fitted.

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

    def fit(self, ds: xr.Dataset) -> Normalizer:
        """Fit on ``ds`` (already restricted to the training steps); returns ``self``."""
        names = self.variables if self.variables is not None else list(ds.data_vars)
        lazy = {}
        for name in names:
            da = ds[name].astype("float64")
            lazy[name] = (da.mean(skipna=True).data, (da**2).mean(skipna=True).data)
        with reading(ds[names]):
            (computed,) = dask.compute(lazy)
        self.mean_, self.std_, self.units_ = {}, {}, {}
        for name, (m, m2) in computed.items():
            m, m2 = float(m), float(m2)
            if not np.isfinite(m):
                raise ClimatuneError(
                    f"variable '{name}' is all NaN in the training years; drop it or choose other years"
                )
            self.mean_[name] = m
            self.std_[name] = max(float(np.sqrt(max(m2 - m * m, 0.0))), _MIN_STD)
            self.units_[name] = str(ds[name].attrs.get("units", ""))
        return self

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
        return ds.assign({n: (ds[n] - self.mean_[n]) / self.std_[n] for n in names})

    def inverse_transform(self, ds: xr.Dataset) -> xr.Dataset:
        """Undo :meth:`transform`, restoring physical units."""
        names = [str(n) for n in ds.data_vars if n in getattr(self, "mean_", {})]
        self._check(names)
        out = ds.assign({n: ds[n] * self.std_[n] + self.mean_[n] for n in names})
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

        See :data:`SHIFT_LIMIT` and :data:`SPREAD_LIMIT` for what counts as clearly.

        Examples
        --------
        >>> old = Normalizer.from_dict({"mean": {"tas": 287.7}, "std": {"tas": 11.3}})
        >>> new = Normalizer.from_dict({"mean": {"tas": 0.0}, "std": {"tas": 1.0}})
        >>> old.shift(new, "tas")
        'mean 0 ± 1 against the stored 287.7 ± 11.3 (25.5 stored stds apart)'
        """
        mean, std = self.scale(name)
        new_mean, new_std = other.scale(name)
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
        """Keep these statistics, but take ``refit`` variables (and any new ones) from ``other``."""
        out = Normalizer()
        out.mean_, out.std_, out.units_ = dict(self.mean_), dict(self.std_), dict(self.units_)
        for name in other.mean_:
            if name in set(refit) or name not in self.mean_:
                out.mean_[name] = other.mean_[name]
                out.std_[name] = other.std_[name]
                out.units_[name] = other.units_[name]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able statistics for the artifact."""
        return {"mean": self.mean_, "std": self.std_, "units": self.units_}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalizer:
        """Rebuild a fitted normaliser from :meth:`to_dict` output."""
        out = cls()
        try:
            out.mean_ = {k: float(v) for k, v in data["mean"].items()}
            out.std_ = {k: float(v) for k, v in data["std"].items()}
            out.units_ = {k: str(v) for k, v in data.get("units", {}).items()}
        except (KeyError, AttributeError, TypeError, ValueError) as exc:
            raise ClimatuneError(
                f"normalisation statistics in the artifact are malformed: {exc}"
            ) from exc
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
        return out
