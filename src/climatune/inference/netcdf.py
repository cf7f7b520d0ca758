"""``climatune predict``: apply a model to a file and write CF-compliant NetCDF."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np
import xarray as xr

from climatune import __version__
from climatune.data.io import open_dataset, source_paths
from climatune.errors import ClimatuneError
from climatune.inference.artifact import model_paths
from climatune.inference.gaussian import gaussian_quantiles
from climatune.inference.model import LoadedModel, load_model
from climatune.inference.predict import ABSENT_INPUTS
from climatune.utils.atomic import atomic_path, check_new_path, check_not_input

__all__ = ["MAX_SAMPLES", "check_quantiles", "predict_file"]

_log = logging.getLogger("climatune")

MAX_SAMPLES = 1000  # MC-dropout draws: each is a whole prediction held in memory


def predict_file(
    model_path: str | Path,
    input_path: str | Path,
    output: str | Path,
    *,
    device: str = "cpu",
    units: Literal["input", "model"] = "input",
    quantiles: str | Sequence[float] = (),
    samples: int = 0,
) -> Path:
    """``climatune predict``: read ``input_path``, predict on ``device``, write CF NetCDF.

    The predictions are in the input's units, or the model's with ``units="model"``
    (:meth:`~climatune.inference.model.LoadedModel.predict`). An ensemble's file holds
    every member along ``member`` (CF ``realization``); ``samples=N`` draws N predictions
    per member with MC dropout. With ``quantiles``, the file holds instead the mean over
    the members (``cell_methods: "member: mean"``) and, in ``NAME_quantiles``, the given
    quantiles along a ``quantile`` coordinate.

    A Gaussian head (``model.head_distribution: gaussian``) writes its predictive mean
    and, in ``NAME_std``, its standard deviation (per member for an ensemble); with
    ``quantiles``, the mean and the quantiles of its distribution (closed-form for one
    network, of the mixture of the members' Gaussians for an ensemble), with or without
    ``samples`` (the exact quantiles need no draws, which would only add sampling noise;
    a note says so); ``samples=N`` alone draws N values from each member's Gaussian. The
    global ``distribution`` attribute says which.

    Input variables of the model that the file lacks, which a ``vartoken_vit`` model runs
    without (:func:`~climatune.inference.predict.model_view`), are named in the global
    ``absent_inputs`` attribute and in ``history``.
    """
    quantiles = check_quantiles(quantiles)
    if not 0 <= samples <= MAX_SAMPLES:
        raise ClimatuneError(
            f"--samples must be a count from 1 to {MAX_SAMPLES} (0: none), got {samples}"
        )
    output = Path(output)
    if output.exists() and output.is_dir():
        raise ClimatuneError(f"--output {output} is a directory; give a .nc file path")
    check_not_input(output, [*model_paths(model_path), *source_paths(input_path)], flag="--output")
    check_new_path(output, flag="--output")
    model = load_model(model_path, device)
    gaussian = model.distribution == "gaussian"
    if quantiles and model.members == 1 and not samples and not gaussian:
        raise ClimatuneError(
            "--quantiles needs several predictions: an ensemble model (ensemble.members), "
            "MC dropout draws (--samples N) or a Gaussian head (model.head_distribution)"
        )
    ds = open_dataset(input_path)
    own = getattr(model.normalizer, "sources_", None)
    if own:
        _log.warning(
            "note: %s is read with the pooled statistics; the model's own statistics of "
            "%s are for its data.sources (climatune evaluate with data.sources listing one)",
            input_path,
            ", ".join(own),
        )
    if gaussian and quantiles and samples:
        _log.warning(
            "note: --samples %d not drawn: the quantiles of a Gaussian head are exact "
            "(closed form%s), not estimated from draws",
            samples,
            ", of the members' mixture" if model.members > 1 else "",
        )
        samples = 0
    draws = model.members > 1 or samples > 0
    if gaussian and not samples:
        pred, absent = _gaussian_summary(model, ds, units, quantiles)
    else:
        pred = model.predict(ds, units=units, members=draws, samples=samples)
        absent = pred.attrs.get(ABSENT_INPUTS, "")
        if draws:
            pred = _ensemble_summary(pred, quantiles, samples, gaussian=gaussian)
    calendar = ds.time.encoding.get("calendar") or pred.time.dt.calendar
    left_out = f" (absent input variables left out: {absent})" if absent else ""
    pred.attrs = {
        "Conventions": "CF-1.8",
        "title": f"ClimaTune {model.meta.data['task']['kind']} predictions",
        "source": f"climatune {__version__}, model {model.model_dir.resolve()}",
        "history": f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}: climatune predict "
        f"{model_path} --input {input_path} --output {output}{left_out}",
        **pred.attrs,
        **({ABSENT_INPUTS: absent} if absent else {}),
    }
    for coord, attrs in (
        ("lat", {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}),
        ("lon", {"units": "degrees_east", "standard_name": "longitude", "axis": "X"}),
    ):
        if coord in pred.coords:
            pred[coord].attrs.update(attrs)
    pred.time.attrs.update({"standard_name": "time", "axis": "T"})
    encoding: dict[str, dict] = {"time": {"units": "days since 1850-01-01", "calendar": calendar}}
    encoding.update(
        {str(v): {"_FillValue": np.float32(np.nan), "dtype": "float32"} for v in pred.data_vars}
    )
    if "member" in pred.coords:
        encoding["member"] = {"dtype": "int32"}
    with atomic_path(output, overwrite=False) as tmp:
        pred.to_netcdf(tmp, encoding=encoding, engine="netcdf4")
    return output


def check_quantiles(quantiles: str | Sequence[float]) -> list[float]:
    """The quantiles asked for (``"0.05,0.5,0.95"`` or numbers), sorted; each must lie
    strictly between 0 and 1, once."""
    if isinstance(quantiles, str):
        try:
            values = [float(q) for q in quantiles.split(",") if q.strip()]
        except ValueError:
            raise ClimatuneError(
                f"--quantiles {quantiles[:40]!r} must be comma-separated numbers, e.g. 0.05,0.5,0.95"
            ) from None
    else:
        values = [float(q) for q in quantiles]
    bad = [q for q in values if not 0.0 < q < 1.0]  # NaN too
    if bad:
        raise ClimatuneError(f"--quantiles must lie strictly between 0 and 1, got {bad[0]:g}")
    if len(set(values)) != len(values):
        raise ClimatuneError("--quantiles lists a quantile twice")
    return sorted(values)


def _ensemble_summary(
    pred: xr.Dataset, quantiles: Sequence[float], samples: int, *, gaussian: bool = False
) -> xr.Dataset:
    """``pred`` (with a ``member`` dimension) as CF wants it: each member as a realization,
    or the members' mean plus the chosen quantiles. ``gaussian``: the samples are random
    draws from a Gaussian head's predictive distribution, not MC-dropout draws."""
    n = pred.sizes["member"]
    kind = "random draws from the predictive Gaussian" if gaussian else "MC-dropout draws"
    how = f"{n} {kind}" if samples else f"{n} ensemble members"
    if samples and n != samples:
        how = f"{samples} {kind} from each of {n // samples} ensemble members"
    if not quantiles:
        pred = pred.assign_coords(member=np.arange(n, dtype="int32"))
        pred.member.attrs.update(
            {"standard_name": "realization", "long_name": "ensemble member", "units": "1"}
        )
        pred.attrs = {"ensemble": f"each of {how}, along 'member'"}
        return pred
    out = {}
    for name, da in pred.data_vars.items():
        mean = da.mean("member", keep_attrs=True)
        mean.attrs["cell_methods"] = "member: mean"
        out[str(name)] = mean
        q = da.quantile(list(quantiles), dim="member", keep_attrs=True)
        q.attrs["long_name"] = f"quantiles of {da.attrs.get('long_name') or name} over {how}"
        q.attrs["comment"] = "the quantile coordinate gives the probability (linear interpolation)"
        out[f"{name}_quantiles"] = q.transpose("quantile", ...)
    result = xr.Dataset(out)
    result["quantile"].attrs.update({"long_name": "probability of the quantile", "units": "1"})
    result.attrs = {"ensemble": f"the mean and quantiles {list(quantiles)} of {how}"}
    return result


def _gaussian_summary(
    model: LoadedModel, ds: xr.Dataset, units: Literal["input", "model"], quantiles: Sequence[float]
) -> tuple[xr.Dataset, str]:
    """A Gaussian head's predictive distribution as CF NetCDF: the mean and ``NAME_std``
    (along ``member`` for an ensemble), or the mean and ``NAME_quantiles``; and the
    input variables that ``ds`` lacked (:data:`ABSENT_INPUTS`)."""
    mean, std = model.predict_distribution(ds, units=units)
    absent = str(mean.attrs.get(ABSENT_INPUTS, ""))
    n = mean.sizes["member"]
    what = "the predictive Gaussian" if n == 1 else f"the mixture of {n} members' Gaussians"
    out = {}
    if quantiles:
        how = "closed form" if n == 1 else "its CDF solved numerically"
        for name, da in mean.data_vars.items():
            avg = da.mean("member", keep_attrs=True)
            avg.attrs["cell_methods"] = "member: mean" if n > 1 else "distribution: mean"
            out[str(name)] = avg
            q = gaussian_quantiles(da, std[name], quantiles)
            q.attrs["long_name"] = f"quantiles of {da.attrs.get('long_name') or name} from {what}"
            q.attrs["comment"] = f"the quantile coordinate gives the probability ({how})"
            out[f"{name}_quantiles"] = q
        result = xr.Dataset(out)
        result["quantile"].attrs.update({"long_name": "probability of the quantile", "units": "1"})
        result.attrs = {
            "distribution": f"the mean and quantiles {list(quantiles)} of {what} ({how})"
        }
        return result, absent
    for name, da in mean.data_vars.items():
        sd = std[name].assign_attrs(
            {
                **{k: v for k, v in da.attrs.items() if k == "units"},
                "long_name": f"standard deviation of the predictive Gaussian of {da.attrs.get('long_name') or name}",
                "cell_methods": "distribution: standard_deviation",
            }
        )
        mu = da.assign_attrs(cell_methods="distribution: mean")
        if n == 1:
            mu, sd = mu.isel(member=0, drop=True), sd.isel(member=0, drop=True)
        out[str(name)], out[f"{name}_std"] = mu, sd
    result = xr.Dataset(out)
    if n > 1:
        result = result.assign_coords(member=np.arange(n, dtype="int32"))
        result.member.attrs.update(
            {"standard_name": "realization", "long_name": "ensemble member", "units": "1"}
        )
    where = "" if n == 1 else ", per ensemble member along 'member'"
    result.attrs = {
        "distribution": f"the mean and standard deviation (NAME_std) of the predictive Gaussian{where}"
    }
    return result, absent
