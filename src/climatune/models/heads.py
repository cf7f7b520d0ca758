"""Task heads: features ``[B, C, H, W]`` to fields or to scalars."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import PositiveInt
from torch import Tensor, nn

from climatune.errors import ClimatuneError, closest
from climatune.models.backbones.base import Dropout
from climatune.models.registry import register_head

__all__ = [
    "DISTRIBUTIONS",
    "SCALE_FLOOR",
    "SCALE_GAIN",
    "Head",
    "FieldHead",
    "ScalarHead",
    "ReadoutHead",
]

#: What a head predicts per output: a value (``none``) or a Gaussian's mean and scale.
DISTRIBUTIONS = ("none", "gaussian")
#: The smallest scale a Gaussian head predicts, in normalised units (softplus + floor).
SCALE_FLOOR = 1e-3
#: A Gaussian head's raw scale channels are multiplied by this before the softplus, so that
#: Adam moves the scale ten times as fast as the mean: at a fine-tuning learning rate the
#: scale must travel a factor of several from its start, the mean only a small correction
#: (measured on the demo: a spread-skill ratio of 1.95 after 30 epochs without it).
SCALE_GAIN = 10.0


class Head(nn.Module):
    """Base class: ``forward(feats, mask=None)``; ``kind`` and ``hparams`` rebuild it.

    Subclasses register with ``@register_head(kind)``. Their constructor takes
    ``(in_ch, n_out, **options)``; ``data_options`` are the arguments that come from the
    backbone and the data, the rest are the user's options (``model.head`` in the config).
    ``legacy_hparams`` are the values of hyperparameters added since a saved head was
    written: what that head did before they existed.

    ``distribution`` (``model.head_distribution``) is ``"none"``: one channel per output,
    or ``"gaussian"``: per output a mean channel, then as many scale channels after them,
    ``[B, 2 * n_out, ...]``; :class:`~climatune.models.net.ClimateNet` turns the scale
    channels positive (softplus plus :data:`SCALE_FLOOR`). It is in ``hparams`` only when
    not ``none``, so a deterministic head's spec is what it always was.
    """

    kind: ClassVar[str] = ""
    data_options: ClassVar[frozenset[str]] = frozenset({"in_ch", "n_out", "distribution"})
    legacy_hparams: ClassVar[dict[str, Any]] = {}
    n_out: int
    hparams: dict[str, Any]
    distribution: str = "none"
    #: True until weights are loaded into the head (an artifact's, a checkpoint's)
    fresh: bool = True

    def output_layer(self) -> nn.Conv2d | nn.Linear:
        """The last layer, whose output channels are the means, then a Gaussian's scales."""
        raise NotImplementedError

    @torch.no_grad()
    def set_output(self, *, mean: float | None = None, scale: Tensor | None = None) -> None:
        """Set a Gaussian head's mean channels to the constant ``mean`` (zero weights), or
        its scale channels to the constant per-output ``scale`` (normalised units, above
        :data:`SCALE_FLOOR`; zero weights, the bias its softplus inverse over
        :data:`SCALE_GAIN`)."""
        layer = self.output_layer()
        if mean is not None:
            layer.weight[: self.n_out] = 0.0
            if layer.bias is not None:
                layer.bias[: self.n_out] = mean
        if scale is not None:
            assert self.distribution == "gaussian" and layer.bias is not None
            raw = (scale.to(layer.bias) - SCALE_FLOOR).clamp_min(1e-6)
            layer.weight[self.n_out :] = 0.0
            inverse = raw + torch.log(-torch.expm1(-raw))  # softplus⁻¹
            layer.bias[self.n_out :] = inverse / SCALE_GAIN

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self.fresh = False

    def _set_distribution(self, distribution: str) -> int:
        """Record ``distribution`` (checked) and return the channels per output."""
        if distribution not in DISTRIBUTIONS:
            raise ClimatuneError(
                f"unknown head distribution '{distribution}'{closest(distribution, DISTRIBUTIONS)}; "
                f"choose one of: {', '.join(DISTRIBUTIONS)}"
            )
        self.distribution = distribution
        if distribution != "none":
            self.hparams["distribution"] = distribution
        return 2 if distribution == "gaussian" else 1


@register_head("field")
class FieldHead(Head):
    """A 1x1 convolution: ``[B, in_ch, H, W] -> [B, n_out, H, W]``; ``mask`` is ignored."""

    def __init__(self, in_ch: int, n_out: int, distribution: str = "none") -> None:
        super().__init__()
        self.n_out = n_out
        self.hparams = {}
        self.proj = nn.Conv2d(in_ch, n_out * self._set_distribution(distribution), 1)

    def output_layer(self) -> nn.Conv2d:
        return self.proj

    def forward(self, feats: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.proj(feats)


@register_head("scalar")
class ScalarHead(Head):
    """Masked mean pooling over grid cells, then an MLP: ``-> [B, n_out]``.

    ``mask`` (``[H, W]``, ``[B, H, W]`` or ``[B, 1, H, W]``, bool or non-negative
    weights) selects the cells pooled, such as the valid cells of a region; by default
    every cell counts.

    Parameters
    ----------
    hidden, dropout : int, float
        Width and dropout of the MLP.
    norm : {"batch", "none"}
        ``"batch"`` standardises the pooled features over the batch before the MLP
        (running statistics in eval mode). Per-cell normalised features carry a signal
        such as an SST anomaly as a small change on a large value common to all samples;
        standardising brings that change to unit scale, and keeps the batch-mean error
        from drifting the backbone towards features that do not change at all.
        ``"none"`` feeds the pooled features as they are (heads saved before this option).
    """

    legacy_hparams: ClassVar[dict[str, Any]] = {"norm": "none"}
    norms: ClassVar[tuple[str, ...]] = ("batch", "none")

    def __init__(
        self,
        in_ch: int,
        n_out: int,
        hidden: PositiveInt = 64,
        dropout: Dropout = 0.0,
        norm: str = "batch",
        distribution: str = "none",
    ) -> None:
        super().__init__()
        if norm not in self.norms:
            raise ClimatuneError(
                f"unknown scalar head norm '{norm}'{closest(norm, self.norms)}; "
                f"choose one of: {', '.join(self.norms)}"
            )
        self.n_out = n_out
        self.hparams = {"hidden": hidden, "dropout": dropout, "norm": norm}
        channels = n_out * self._set_distribution(distribution)
        self.norm = PooledBatchNorm(in_ch) if norm == "batch" else nn.Identity()
        self.mlp = nn.Sequential(
            nn.Linear(in_ch, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, channels)
        )

    def output_layer(self) -> nn.Linear:
        layer = self.mlp[-1]
        assert isinstance(layer, nn.Linear)
        return layer

    def forward(self, feats: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is None:
            pooled = feats.mean(dim=(-2, -1))
        else:
            w = mask.to(feats.dtype)
            w = w.view(1, 1, *w.shape) if w.ndim == 2 else w
            w = w.unsqueeze(1) if w.ndim == 3 else w
            pooled = (feats * w).sum(dim=(-2, -1)) / w.sum(dim=(-2, -1)).clamp_min(1e-12)
        return self.mlp(self.norm(pooled))


class PooledBatchNorm(nn.BatchNorm1d):
    """:class:`~torch.nn.BatchNorm1d` that uses its running statistics for a batch of one."""

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, eps=self.eps
            )
        return super().forward(x)


@register_head("readout")
class ReadoutHead(Head):
    """A linear map from every feature at every cell to scalars: ``-> [B, n_out]``.

    The head of a ``ridge_probe`` fine-tuning, whose weights are a ridge solution on the
    frozen features; an index lives in a region, so the readout keeps where each feature
    is rather than pooling it away. It is tied to the ``grid`` (H, W) it was fitted on;
    ``mask`` is ignored (every cell has its own weight).
    """

    data_options = Head.data_options | {"grid"}

    def __init__(
        self,
        in_ch: int,
        n_out: int,
        grid: tuple[int, int] = (1, 1),
        distribution: str = "none",
    ) -> None:
        super().__init__()
        self.n_out = n_out
        self.grid = (int(grid[0]), int(grid[1]))
        self.hparams = {"grid": list(self.grid)}
        channels = n_out * self._set_distribution(distribution)
        self.proj = nn.Linear(in_ch * self.grid[0] * self.grid[1], channels)

    def output_layer(self) -> nn.Linear:
        return self.proj

    def forward(self, feats: Tensor, mask: Tensor | None = None) -> Tensor:
        if tuple(feats.shape[-2:]) != self.grid:
            raise ClimatuneError(
                f"this model's readout head was fitted on a {self.grid[0]}x{self.grid[1]} grid, "
                f"not {feats.shape[-2]}x{feats.shape[-1]}; give it data on its own grid"
            )
        return self.proj(feats.flatten(1))
