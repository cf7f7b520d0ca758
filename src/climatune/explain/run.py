"""``climatune explain``: attributions, the component interaction matrix and faithfulness.

:func:`explain` works on a loaded model and a task view and returns an
:class:`Explanation`; :func:`write_explanation` writes it; :func:`explain_command` does
both for the command line.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from torch import Tensor

from climatune import __version__
from climatune.config import Config, config_inputs, load_config, model_config
from climatune.data.view import TaskView, build_view
from climatune.errors import ClimatuneError
from climatune.explain.attribution import Settings, attribute, check_method
from climatune.explain.faithfulness import deletion_curves, write_faithfulness
from climatune.explain.inputs import (
    REFERENCE_INPUTS,
    ExplainInputs,
    ReferenceInput,
    background,
    baseline_description,
    load_inputs,
)
from climatune.explain.interactions import (
    Interactions,
    component_of,
    interaction_matrix,
    write_interactions,
)
from climatune.explain.plots import plot_attribution_maps, plot_faithfulness, plot_interactions
from climatune.explain.targets import Target, TargetFunction, parse_target
from climatune.inference import (
    ABSENT_INPUTS,
    LoadedModel,
    input_names,
    load_model,
    margined_static,
    model_paths,
    model_view,
)
from climatune.inference.predict import padded_for
from climatune.utils.atomic import atomic_path, prepare_output_dir, releases_outputs

__all__ = ["Explanation", "explain", "explain_command", "write_explanation", "resolve_config"]

EXTRA_SAMPLES = 4  # samples for the interaction rows of the other outputs


@dataclass
class Explanation:
    """Attributions of one target plus the interaction matrix and the deletion curves.

    ``baseline`` says what the attributions are measured against, ``reference`` what the
    deletion curves put in place of the deleted cells, ``settings`` the method's knobs.
    """

    attribution: xr.DataArray
    target: Target
    interactions: Interactions
    faithfulness: dict[str, Any]
    method: str
    baseline: str
    reference: str
    settings: dict[str, Any] = field(default_factory=dict)
    left_out: tuple[str, ...] = ()  # the model's inputs that the data lacked


def resolve_config(
    model: LoadedModel, config: str | Path | None, overrides: list[str] | None
) -> Config:
    """The run config: ``config`` if given, else the model's own, with ``--set`` overrides."""
    if config:
        return load_config(config, overrides)
    return model_config(model.meta, overrides)


def _components(model: LoadedModel, view: TaskView, overrides: dict[str, str]) -> dict[str, str]:
    records = {r["name"]: r for r in model.meta.data["inputs"]}
    out = {}
    for name in view.inputs:
        attrs = {
            **records.get(name, {}),
            **(view.fields[name].attrs if name in view.fields else {}),
        }
        out[name] = component_of(name, attrs, overrides)
    return out


def _to_dataarray(
    attr: np.ndarray,
    inputs: ExplainInputs,
    view: TaskView,
    target: Target,
    components: dict[str, str],
) -> xr.DataArray:
    """``(sample, variable, lag, lat, lon)`` with coordinates; ``lag`` dropped for one step."""
    coords: dict[str, Any] = {
        "sample": (
            "sample",
            inputs.times,
            {
                "standard_name": "time",
                "axis": "T",
                "long_name": "time of the sample's last input step",
            },
        ),
        "target_time": (
            "sample",
            inputs.target_times,
            {"long_name": "time of the sample's target"},
        ),
        "variable": ("variable", list(view.inputs), {"long_name": "input variable"}),
        "component": (
            "variable",
            [components[v] for v in view.inputs],
            {"long_name": "climate component of the input variable"},
        ),
        "lag": (
            "lag",
            np.arange(-view.history + 1, 1),
            {"long_name": "input step relative to the sample's last step", "units": "1"},
        ),
        "lat": view.fields.lat.assign_attrs(
            units="degrees_north", standard_name="latitude", axis="Y"
        ),
        "lon": view.fields.lon.assign_attrs(
            units="degrees_east", standard_name="longitude", axis="X"
        ),
    }
    da = xr.DataArray(
        attr, dims=("sample", "variable", "lag", "lat", "lon"), coords=coords, name="attribution"
    )
    if view.history == 1:
        da = da.isel(lag=0, drop=True)
    return da.assign_attrs(
        long_name=f"attribution of {target.label} to each input cell",
        units=target.units or "1",
    )


def _attribute(
    make: Callable[[Target], TargetFunction],
    target: Target,
    inputs: ExplainInputs,
    method: str,
    settings: Settings,
    bg: Tensor | None,
) -> np.ndarray:
    func = make(target)
    return attribute(
        method,
        func,
        inputs.fields,
        inputs.baseline,
        valid=inputs.valid,
        background=bg,
        settings=settings,
    )


def explain(
    model: LoadedModel,
    view: TaskView,
    *,
    method: str = "ig",
    target: str | None = None,
    samples: int = 16,
    split: str | None = None,
    baseline: ReferenceInput = "climatology",
    settings: Settings | None = None,
    components: dict[str, str] | None = None,
) -> Explanation:
    """Attribute ``target`` for the first ``samples`` samples of ``split`` (test, else val).

    For a model with several outputs, each other output variable also gets a row of the
    interaction matrix, from an attribution pass over fewer samples.
    """
    check_method(method)
    if baseline not in REFERENCE_INPUTS:
        raise ClimatuneError(
            f"unknown baseline '{baseline}'; choose one of: {', '.join(REFERENCE_INPUTS)}"
        )
    if samples < 1:
        raise ClimatuneError(f"--samples must be at least 1, got {samples}")
    view = model_view(model, view)
    split = split or ("test" if "test" in view.anchors else "val")
    if split not in view.anchors or view.anchors[split].size == 0:
        raise ClimatuneError(f"the data has no '{split}' samples to explain; check data.split")
    outputs, units = model.meta.outputs, model.meta.units("outputs")
    tgt = parse_target(target, view, outputs, units)
    settings = settings or Settings()
    # a crop of the model's grid is read inside the margin predict reads it in
    static, margins = margined_static(model, view)
    names = input_names(model, view)  # the inputs the data lacks are left out by name
    make = functools.partial(
        TargetFunction,
        model,
        static,
        names=names,
        margins=margins,
        periodic_lon=view.periodic_lon,
    )
    inputs = load_inputs(view, split, samples, model.normalizer, baseline=baseline)
    bg = background(view, model.normalizer) if method == "shap" else None
    # a crop of a global grid is padded at its edges, as predict pads it, not wrapped
    with padded_for(model, view):
        attr = _attribute(make, tgt, inputs, method, settings, bg)
        comps = _components(model, view, components or {})
        rows = {tgt.label: attr}
        spec = "" if tgt.region is None else f"@{tgt.region}"
        others = [o for o in outputs if o != tgt.variable] if not view.is_scalar else []
        skipped: dict[str, str] = {}
        if others:
            few = dataclasses.replace(
                inputs,
                fields=inputs.fields[:EXTRA_SAMPLES],
                baseline=inputs.baseline[:EXTRA_SAMPLES],
            )
            for name in others:
                try:
                    other = parse_target(name + spec, view, outputs, units)
                except ClimatuneError:  # e.g. SST over a land box: no row for it
                    skipped[name + spec] = f"'{name}' has no valid cell in the target region"
                    continue
                quiet = dataclasses.replace(settings, used={})
                rows[other.label] = _attribute(make, other, few, method, quiet, bg)
        table = interaction_matrix(rows, view.inputs, comps, method)
        table.skipped = skipped
        func = make(tgt)
        faith = deletion_curves(func, inputs.fields, inputs.baseline, attr, seed=settings.seed)
    da = _to_dataarray(attr, inputs, view, tgt, comps)
    return Explanation(
        da,
        tgt,
        table,
        {**faith, "units": tgt.units},
        method,
        baseline_description(method, baseline),
        baseline_description("ig", baseline),
        dict(settings.used),
        view.left_out,
    )


_COMMENTS = {
    "ig": "integrated gradients: the path integral of the gradient from the baseline to the input",
    "saliency": "the gradient of the target with respect to each normalised input",
    "occlusion": "change of the target when a window is set to the baseline, spread over its cells",
    "lime": "coefficient of a local linear surrogate over superpixels, spread over their cells",
    "shap": "SHAP values by expected gradients over a background of training samples",
}


def _dataset(expl: Explanation, model: LoadedModel) -> tuple[xr.Dataset, dict[str, Any]]:
    da = expl.attribution.assign_attrs(comment=_COMMENTS[expl.method])
    ds = da.to_dataset()
    if expl.target.mask is not None:
        ds["target_mask"] = expl.target.mask.astype("int8").assign_attrs(
            long_name=f"cells averaged into the target {expl.target.label}",
            flag_values=[0, 1],
            flag_meanings="outside inside",
        )
    ds.attrs = {
        "Conventions": "CF-1.8",
        "title": f"ClimaTune {expl.method} attributions of {expl.target.label}",
        "source": f"climatune {__version__}",
        "history": f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}: climatune explain",
        "method": expl.method,
        "target": expl.target.label,
        "model": str(model.model_dir.resolve()),
        "baseline": expl.baseline,
        "inputs": "normalised per variable with the model's statistics; attributions are in the target's units",
        "settings": ", ".join(f"{k}={v}" for k, v in expl.settings.items()),
        **({ABSENT_INPUTS: ", ".join(expl.left_out)} if expl.left_out else {}),
    }
    first = da["sample"].values[0]
    units = f"days since {getattr(first, 'year', 1970):04d}-01-01"
    calendar = getattr(first, "calendar", None) or "standard"
    encoding: dict[str, Any] = {
        "sample": {"units": units, "calendar": calendar, "dtype": "float64"},
        "target_time": {"units": units, "calendar": calendar, "dtype": "float64"},
        "attribution": {"dtype": "float32", "_FillValue": np.float32(np.nan), "zlib": True},
    }
    return ds, encoding


def write_explanation(expl: Explanation, model: LoadedModel, out: Path) -> list[Path]:
    """Write the NetCDF, the maps, the interaction matrix and the faithfulness files to ``out``.

    Each file is written atomically; ``out`` must exist.
    """
    ds, encoding = _dataset(expl, model)
    path = out / "attributions.nc"
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, encoding=encoding, engine="netcdf4")
    title = f"{expl.method}: {expl.target.label} ({ds.sizes['sample']} samples)"
    paths = [
        path,
        plot_attribution_maps(
            expl.attribution, expl.target.mask, out / "attribution_maps.png", title=title
        ),
    ]
    paths += write_interactions(expl.interactions, out)
    paths.append(plot_interactions(expl.interactions, out / "interactions.png"))
    meta = {
        "method": expl.method,
        "target": expl.target.label,
        "units": expl.target.units,
        "deleted_cells_replaced_by": expl.reference,
        "measure": "mean |change| of the target over the samples",
    }
    paths.append(write_faithfulness(expl.faithfulness, out, **meta))
    paths.append(
        plot_faithfulness(
            expl.faithfulness, out / "faithfulness.png", title=f"deletion curves: {title}"
        )
    )
    return paths


@releases_outputs
def explain_command(
    model: str | Path,
    *,
    config: str | Path | None,
    overrides: list[str] | None,
    method: str,
    target: str | None,
    samples: int,
    out: str | Path,
    device: str = "cpu",
    overwrite: bool = False,
) -> Path:
    """``climatune explain``: everything :func:`write_explanation` writes, under ``out``.

    The network runs on ``device``; inputs and attributions stay on the CPU. ``overwrite``
    replaces an earlier explanation at ``out``.
    """
    check_method(method)
    loaded = load_model(model, device)
    cfg = resolve_config(loaded, config, overrides)
    claim: dict[str, Any] = {
        "command": "explain",
        "inputs": [*model_paths(model), *config_inputs(cfg), *([config] if config else [])],
        "overwrite": overwrite,
    }
    prepare_output_dir(out, create=False, **claim)
    view = build_view(cfg.data, cfg.task, partial_inputs=True)
    expl = explain(
        loaded,
        view,
        method=method,
        target=target,
        samples=samples,
        components=dict(cfg.explain.components),
    )
    out = prepare_output_dir(out, **claim)
    write_explanation(expl, loaded, out)
    return out
