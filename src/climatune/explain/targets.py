"""What is explained: one scalar per sample, reduced from the model's output.

A target is an output variable (``tas``), optionally over a box
(``tas@lat=30:50,lon=235:260``). For a field output the scalar is the latitude-weighted
mean over the box, or over the task's scored region by default, on the cells where the
variable is valid; for an index model it is the predicted index itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import xarray as xr
from torch import Tensor, nn

from climatune.data.grid import lat_weights
from climatune.data.regions import Region, parse_region
from climatune.data.view import TaskView
from climatune.errors import ClimatuneError, closest
from climatune.inference.margin import Margins, pad_margins, trim_margins

if TYPE_CHECKING:
    from climatune.inference import LoadedModel

__all__ = ["Target", "parse_target", "TargetFunction"]


@dataclass(frozen=True)
class Target:
    """A scalar target: output ``variable`` (channel ``channel``) over ``mask``.

    ``weights`` are the ``[H, W]`` averaging weights (summing to 1) of a field output,
    ``None`` for an index; ``label`` is the canonical spec, e.g. ``tas@lat=30:50,lon=235:260``.
    """

    variable: str
    channel: int
    label: str
    units: str
    region: Region | None = None
    mask: xr.DataArray | None = None
    weights: np.ndarray | None = None


def _valid_cells(view: TaskView, name: str) -> xr.DataArray:
    """Cells where ``name`` is defined (all cells for a variable that is not in the data)."""
    if name in view.fields:
        return view.fields[name].isel(time=0, drop=True).notnull()
    return xr.ones_like(view.region_mask, dtype=bool)


def parse_target(
    spec: str | None, view: TaskView, outputs: list[str], units: dict[str, str]
) -> Target:
    """Parse ``--target`` (``NAME`` or ``NAME@lat=a:b,lon=c:d``) against a model's outputs.

    ``None`` means the first output over the scored region.

    Examples
    --------
    >>> parse_target("tas@lat=30:50,lon=235:260", view, ["tas"], {"tas": "K"}).label  # doctest: +SKIP
    'tas@lat=30:50,lon=235:260'
    """
    text = (spec or "").strip()
    name, _, where = text.partition("@")
    name = name.strip() or outputs[0]
    if name not in outputs:
        raise ClimatuneError(
            f"--target {spec!r}: '{name}' is not an output of the model{closest(name, outputs)}; "
            f"its outputs are: {', '.join(outputs)}"
        )
    channel = outputs.index(name)
    if view.is_scalar:
        if where:
            raise ClimatuneError(
                f"--target {spec!r}: an index model predicts one number, so it has no region; "
                f"give --target {name}"
            )
        return Target(name, channel, name, units.get(name, ""))
    if where:
        region = parse_region(where)
        region.check_within(view.fields)
        mask = region.mask(view.fields)
        label = f"{name}@{region}"
    else:
        region, mask, label = None, view.region_mask, name
    mask = (mask & _valid_cells(view, name)).transpose("lat", "lon")
    if not bool(mask.any()):
        raise ClimatuneError(
            f"--target {spec!r}: '{name}' has no valid cell in that region (all NaN, e.g. land "
            "in an SST field); choose another box"
        )
    w = lat_weights(view.fields.lat, mask).transpose("lat", "lon").values
    return Target(
        name, channel, label, units.get(name, ""), region, mask.rename("target_mask"), w / w.sum()
    )


class TargetFunction(nn.Module):
    """``fields [B, V, history, H, W]`` (normalised) -> the target ``[B]`` in physical units.

    Wraps :meth:`LoadedModel.forward` (the residual base included); an ``nn.Module`` so
    that SHAP's explainers accept it. ``names`` are the variables of ``fields`` when they
    are a subset of the model's inputs (:func:`~climatune.inference.input_names`).
    ``margins`` are those that ``predict`` reads a crop of the model's grid in
    (:func:`~climatune.inference.margined_static`, whose ``static`` they go with): the
    fields are padded by them and the output cut back, so that the function explained is
    the one ``predict`` computes.
    """

    def __init__(
        self,
        model: LoadedModel,
        static: Tensor,
        target: Target,
        names: Sequence[str] | None = None,
        margins: Margins | None = None,
        periodic_lon: bool = False,
    ) -> None:
        super().__init__()
        self.model, self.target = model, target
        self.margins, self.periodic_lon = margins, periodic_lon
        self.names = None if names is None else list(names)
        self.net = model.net  # registered, so eval() and parameters() reach it
        self.register_buffer("static", static.float(), persistent=False)
        mean, std = model.normalizer.scale(target.variable)
        self.mean, self.std = float(mean), float(std)
        w = (
            torch.zeros(0)
            if target.weights is None
            else torch.from_numpy(target.weights.astype(np.float32))
        )
        self.register_buffer("weights", w, persistent=False)

    def forward(self, fields: Tensor) -> Tensor:
        if self.margins is not None:
            fields = pad_margins(fields, self.margins, self.periodic_lon)
        out = self.model.forward(fields, self.static, self.names)[:, self.target.channel]
        out = trim_margins(out, self.margins)
        if out.dim() == 3:
            out = (out * self.weights).sum(dim=(-2, -1))
        return out * self.std + self.mean
