"""A loaded model: the network (or an ensemble's members), its artifact's metadata and its
static inputs, on a device."""

from __future__ import annotations

import copy
from collections.abc import Sequence
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
from climatune.inference.predict import predict_distribution, predict_view
from climatune.models.ensemble import EnsembleNet, members_of
from climatune.models.net import ClimateNet

__all__ = ["LoadedModel", "load_model"]


class LoadedModel:
    """A trained network with everything needed to apply it to new data.

    Use :func:`load_model` to make one; :meth:`predict` maps an ``xr.Dataset`` to
    denormalised predictions with coordinates. The network runs on :attr:`device`;
    tensors go in and come out on the caller's device.

    A deep ensemble's :attr:`net` is an :class:`~climatune.models.ensemble.EnsembleNet`:
    :meth:`forward` and :meth:`predict` give the members' mean (what metrics and
    attribution use), :meth:`forward_members` and ``predict(..., members=True)`` each
    member's prediction, and :meth:`member` one member as a model of its own.
    """

    def __init__(
        self,
        model_dir: Path,
        net: ClimateNet | EnsembleNet,
        meta: ArtifactMeta,
        static: torch.Tensor,
        device: str | torch.device = "cpu",
        normalizer: Normalizer | None = None,
    ) -> None:
        self.model_dir, self.meta, self.static = model_dir, meta, static
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()
        self.normalizer = normalizer or Normalizer.from_dict(meta.data["normalization"])

    @property
    def members(self) -> int:
        """How many networks the model holds (1 for a single network)."""
        return len(self.net) if isinstance(self.net, EnsembleNet) else 1

    @property
    def accepts_subset(self) -> bool:
        """Whether the network runs on a subset of its input variables (``vartoken_vit``):
        data lacking some of them is then predicted without them
        (:func:`~climatune.inference.predict.model_view`)."""
        return all(net.accepts_subset for net in members_of(self.net))

    @property
    def distribution(self) -> str:
        """What the network predicts: ``"none"`` (values) or ``"gaussian"`` (each member a
        mean and a scale; an ensemble of them is a mixture of Gaussians)."""
        return str(self.net.distribution)

    def member(self, k: int) -> LoadedModel:
        """Member ``k`` as a model of its own, with a copy of its weights (to adapt or train)."""
        if not 0 <= k < self.members:
            raise IndexError(f"member {k} of a model with {self.members}")
        net = copy.deepcopy(members_of(self.net)[k])
        return LoadedModel(
            self.model_dir, net, self.meta, self.static, self.device, self.normalizer
        )

    def forward_members(
        self,
        fields: torch.Tensor,
        static: torch.Tensor | None = None,
        names: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Each member's normalised prediction, ``[members, B, ...]`` (:meth:`forward`)."""
        static = self.static if static is None else static
        x = fields.to(self.device)
        s = static.to(self.device).expand(fields.shape[0], *static.shape[-3:])
        if isinstance(self.net, EnsembleNet):
            return self.net.forward_members(x, s, names=names).to(fields.device)
        return self.net(x, s, names=names).unsqueeze(0).to(fields.device)

    def forward_members_dist(
        self,
        fields: torch.Tensor,
        static: torch.Tensor | None = None,
        names: Sequence[str] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Each member's normalised ``(mean, scale)``, ``[members, B, ...]`` each; the scale
        is None for a deterministic network (:meth:`ClimateNet.forward_dist`)."""
        static = self.static if static is None else static
        x = fields.to(self.device)
        s = static.to(self.device).expand(fields.shape[0], *static.shape[-3:])
        if isinstance(self.net, EnsembleNet):
            mean, scale = self.net.forward_members_dist(x, s, names=names)
        else:
            mean, scale = self.net.forward_dist(x, s, names=names)
            mean, scale = mean.unsqueeze(0), None if scale is None else scale.unsqueeze(0)
        back = fields.device
        return mean.to(back), None if scale is None else scale.to(back)

    def forward(
        self,
        fields: torch.Tensor,
        static: torch.Tensor | None = None,
        names: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Normalised prediction for normalised ``fields`` ``[B, V, history, H, W]``.

        The network adds the residual base (the matching input at step t) it was trained
        with; ``static`` defaults to the stored static inputs; ``names`` are the variables
        of ``fields`` (all of the model's inputs, in order, by default; a subset when
        :attr:`accepts_subset`). Differentiable, for attribution.
        """
        static = self.static if static is None else static
        x = fields.to(self.device)
        s = static.to(self.device).expand(fields.shape[0], *static.shape[-3:])
        return self.net(x, s, names=names).to(fields.device)

    def view(self, ds: xr.Dataset) -> TaskView:
        """The model's own task over every step of ``ds`` (one ``"predict"`` block); the
        inputs ``ds`` lacks are left out of it, for :func:`model_view` to judge."""
        return build_view(
            self.meta.data_config,
            self.meta.task_config,
            canonicalize(ds),
            whole=True,
            partial_inputs=True,
        )

    def predict(
        self,
        ds: xr.Dataset,
        *,
        batch_size: int = 32,
        units: Literal["input", "model"] = "input",
        members: bool = False,
        samples: int = 0,
    ) -> xr.Dataset:
        """Predict every step of ``ds`` that has enough history; physical units, with coords.

        An ensemble predicts its members' mean; with ``members=True``, each member's
        prediction along a ``member`` dimension. ``samples=N`` draws N predictions per
        member with dropout on (MC dropout, along ``member``; refused for a network
        without dropout).

        Field predictions hold the scored region only: the halo read around it is NaN.
        They are in the units of ``ds`` (``units="input"``; data in other units than the
        model's is converted for the network and the predictions converted back) or in
        the model's (``units="model"``). A model that :attr:`accepts_subset` predicts
        data lacking some of its inputs without them (named in ``attrs["absent_inputs"]``).
        """
        view = self.view(ds)
        pred = predict_view(
            self,
            view,
            "predict",
            batch_size=batch_size,
            units=units,
            members=members,
            samples=samples,
        )
        return pred if view.is_scalar else pred.where(view.region_mask)

    def predict_distribution(
        self, ds: xr.Dataset, *, batch_size: int = 32, units: Literal["input", "model"] = "input"
    ) -> tuple[xr.Dataset, xr.Dataset]:
        """A Gaussian head's predictive mean and standard deviation for every step of ``ds``,
        each along a ``member`` dimension (length 1 for a single network); masked and in
        units as :meth:`predict`'s predictions are."""
        view = self.view(ds)
        mean, std = predict_distribution(self, view, "predict", batch_size=batch_size, units=units)
        if view.is_scalar:
            return mean, std
        return mean.where(view.region_mask), std.where(view.region_mask)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load an artifact from a run directory or a ``model/`` directory onto ``device``.

    ``device`` is ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (a GPU when there is one).
    """
    model_dir = resolve_model_dir(path)
    meta, net, static, climatology = read_artifact(model_dir)
    normalizer = Normalizer.from_dict(meta.data["normalization"], climatology)
    return LoadedModel(model_dir, net, meta, static, device, normalizer)
