"""A loaded model: the network, its artifact's metadata and its static inputs, on a device."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import xarray as xr

from climatune.data.io import canonicalize
from climatune.data.normalize import Normalizer
from climatune.data.view import TaskView, build_view
from climatune.inference.artifact import (
    ArtifactMeta,
    read_artifact,
    resolve_device,
    resolve_model_dir,
)
from climatune.inference.predict import predict_view
from climatune.models.net import ClimateNet

__all__ = ["LoadedModel", "load_model"]


class LoadedModel:
    """A trained network with everything needed to apply it to new data.

    Use :func:`load_model` to make one; :meth:`predict` maps an ``xr.Dataset`` to
    denormalised predictions with coordinates. The network runs on :attr:`device`;
    tensors go in and come out on the caller's device.
    """

    def __init__(
        self,
        model_dir: Path,
        net: ClimateNet,
        meta: ArtifactMeta,
        static: torch.Tensor,
        device: str | torch.device = "cpu",
        normalizer: Normalizer | None = None,
    ) -> None:
        self.model_dir, self.meta, self.static = model_dir, meta, static
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()
        self.normalizer = normalizer or Normalizer.from_dict(meta.data["normalization"])

    def forward(self, fields: torch.Tensor, static: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised prediction for normalised ``fields`` ``[B, V, history, H, W]``.

        The network adds the residual base (the matching input at step t) it was trained
        with; ``static`` defaults to the stored static inputs. Differentiable, for attribution.
        """
        static = self.static if static is None else static
        x = fields.to(self.device)
        s = static.to(self.device).expand(fields.shape[0], *static.shape[-3:])
        return self.net(x, s).to(fields.device)

    def view(self, ds: xr.Dataset) -> TaskView:
        """The model's own task over every step of ``ds`` (one ``"predict"`` block)."""
        return build_view(
            self.meta.data_config, self.meta.task_config, canonicalize(ds), whole=True
        )

    def predict(
        self,
        ds: xr.Dataset,
        *,
        batch_size: int = 32,
        units: Literal["input", "model"] = "input",
    ) -> xr.Dataset:
        """Predict every step of ``ds`` that has enough history; physical units, with coords.

        Field predictions hold the scored region only: the halo read around it is NaN.
        They are in the units of ``ds`` (``units="input"``; data in other units than the
        model's is converted for the network and the predictions converted back) or in
        the model's (``units="model"``).
        """
        view = self.view(ds)
        pred = predict_view(self, view, "predict", batch_size=batch_size, units=units)
        return pred if view.is_scalar else pred.where(view.region_mask)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load an artifact from a run directory or a ``model/`` directory onto ``device``.

    ``device`` is ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (a GPU when there is one).
    """
    model_dir = resolve_model_dir(path)
    meta, net, static, climatology = read_artifact(model_dir)
    normalizer = Normalizer.from_dict(meta.data["normalization"], climatology)
    return LoadedModel(model_dir, net, meta, static, device, normalizer)
