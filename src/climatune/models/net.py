"""``ClimateNet``: input stem + backbone + head, with one contract for every backbone."""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from climatune.errors import ClimatuneError, closest
from climatune.models.backbones.base import Backbone
from climatune.models.heads import SCALE_FLOOR, SCALE_GAIN, Head
from climatune.models.padding import crop
from climatune.models.registry import (
    backbone_class,
    create_backbone,
    create_head,
    head_class,
    list_heads,
)
from climatune.models.stem import VariableStem
from climatune.models.token_stem import VariableTokenStem

__all__ = ["ClimateNet", "build_net", "SPEC_VERSION"]

SPEC_VERSION = 3  # 2: the residual connection is part of the spec; 3: a probabilistic head
# (a deterministic network still writes version 2, which every reader since then reads)
_SPEC_VERSIONS = (1, 2, 3)
_SPEC_KEYS = ("backbone", "backbone_kwargs", "variables", "history", "n_static", "head", "n_out")


class ClimateNet(nn.Module):
    """Stem keyed by variable name, a registered backbone, and a task head.

    ``forward = forward_head(forward_features(...))``, plus, for each output field with a
    residual base, the last history step of that input (see :meth:`set_residual`).
    Parameters are grouped as
    ``stem``, ``backbone.stage0`` .. ``backbone.stageN`` (input to output) and ``head``,
    for freezing and layer-wise learning rates. Build one with :func:`build_net`, or from
    a saved :meth:`spec` with :meth:`from_spec`.
    """

    def __init__(
        self,
        stem: VariableStem | VariableTokenStem,
        backbone: Backbone,
        head: Head,
        residual_index: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if stem.width != backbone.hparams["width"]:
            raise ValueError(
                f"stem width {stem.width} != backbone width {backbone.hparams['width']}"
            )
        self.stem = stem
        self.backbone = backbone
        self.head = head
        self.set_residual(residual_index)

    # -- shape of the network ----------------------------------------------------------
    @property
    def variables(self) -> list[str]:
        """Input variables, in the default order of ``fields``."""
        return self.stem.variables

    @property
    def accepts_subset(self) -> bool:
        """Whether ``forward`` runs on a subset of :attr:`variables` (``names``): true for
        the variable-token stem, false for the summing :class:`VariableStem`."""
        return bool(self.stem.accepts_subset)

    @property
    def n_out(self) -> int:
        """Outputs of the head (target fields, or scalars)."""
        return self.head.n_out

    @property
    def head_kind(self) -> str:
        """``"field"`` or ``"scalar"``."""
        return self.head.kind

    @property
    def distribution(self) -> str:
        """What the head predicts: ``"none"`` (values) or ``"gaussian"`` (mean and scale)."""
        return self.head.distribution

    # -- forward ---------------------------------------------------------------------------
    def forward_features(
        self, fields: Tensor, static: Tensor | None = None, names: Sequence[str] | None = None
    ) -> Tensor:
        """Stem and backbone: ``fields[B, V, history, H, W]`` -> ``[B, C, H, W]``.

        See :meth:`VariableStem.forward` for ``static`` and ``names``. A backbone that
        returns a padded grid (``vartoken_vit``) is cropped to the input's, centrally as
        :func:`~climatune.models.padding.pad_to_multiple` padded it.
        """
        feats = self.backbone.forward_features(self.stem(fields, static, names))
        (h, w), (ph, pw) = fields.shape[-2:], feats.shape[-2:]
        if (ph, pw) != (h, w):
            feats = crop(feats, ((ph - h) // 2, (pw - w) // 2, h, w))
        return feats

    def set_residual(self, residual_index: Sequence[int] | None) -> None:
        """Per output, the input variable (index into :attr:`variables`) whose last history
        step is added to the prediction, or -1 for none; ``None`` turns the residual off.

        With a base, a forecast learns the change from persistence and a downscaler what
        the bilinear field misses. A scalar head has no residual.
        """
        index = [-1] * self.n_out if residual_index is None else [int(i) for i in residual_index]
        if len(index) != self.n_out or not all(-1 <= i < len(self.variables) for i in index):
            raise ValueError(
                f"residual_index {index} must list, per output ({self.n_out}), an index into "
                f"the {len(self.variables)} input variables or -1"
            )
        if self.head_kind != "field" and any(i >= 0 for i in index):
            raise ValueError(f"a {self.head_kind} head has no residual base; got {index}")
        self.residual_index = index

    def _add_residual(self, out: Tensor, fields: Tensor, names: Sequence[str] | None) -> Tensor:
        """``out`` plus, per output, the last step of its base input (``-1``: none)."""
        if not any(i >= 0 for i in self.residual_index):
            return out
        order = list(self.variables if names is None else names)
        absent = [self.variables[i] for i in self.residual_index if i >= 0]
        absent = [v for v in absent if v not in order]
        if absent:
            raise ClimatuneError(
                f"the outputs add the last step of {absent} to the prediction, but the inputs "
                f"{order} lack it; give it, or fine-tune without model.residual"
            )
        zeros = torch.zeros_like(fields[:, 0, -1])
        base = [
            fields[:, order.index(self.variables[i]), -1] if i >= 0 else zeros
            for i in self.residual_index
        ]
        return out + torch.stack(base, 1)

    def forward_head(self, feats: Tensor, mask: Tensor | None = None) -> Tensor:
        """Head: ``[B, C, H, W]`` -> ``[B, n_out, H, W]`` (field) or ``[B, n_out]`` (scalar);
        a Gaussian head's raw scale channels follow its means (``2 * n_out`` channels)."""
        return self.head(feats, mask)

    def forward_dist(
        self,
        fields: Tensor,
        static: Tensor | None = None,
        mask: Tensor | None = None,
        names: Sequence[str] | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """The predictive distribution: ``(mean, scale)``, each shaped like :meth:`forward`.

        A Gaussian head's scale is ``softplus(SCALE_GAIN * raw) + SCALE_FLOOR``, positive, in normalised
        units; the residual base is added to the mean only. A deterministic head gives
        ``(prediction, None)``.
        """
        out = self.forward_head(self.forward_features(fields, static, names), mask)
        scale = None
        if self.distribution == "gaussian":
            out, raw = out[:, : self.n_out], out[:, self.n_out :]
            scale = F.softplus(SCALE_GAIN * raw) + SCALE_FLOOR
        return self._add_residual(out, fields, names), scale

    def forward(
        self,
        fields: Tensor,
        static: Tensor | None = None,
        mask: Tensor | None = None,
        names: Sequence[str] | None = None,
    ) -> Tensor:
        """Predict from normalised inputs.

        Parameters
        ----------
        fields : Tensor
            ``[B, V, history, H, W]``, NaN where missing, variables in ``names`` order.
        static : Tensor, optional
            ``[B, n_static, H, W]`` or ``[n_static, H, W]``.
        mask : Tensor, optional
            Cells pooled by a scalar head (``[H, W]``, ``[B, H, W]`` or ``[B, 1, H, W]``).
        names : sequence of str, optional
            Order of the variables in ``fields``; :attr:`variables` by default.

        Returns
        -------
        Tensor
            ``[B, n_out, H, W]`` for a field head, ``[B, n_out]`` for a scalar head, with
            the residual base added: a Gaussian head's mean (:meth:`forward_dist`).
        """
        return self.forward_dist(fields, static, mask, names)[0]

    def reset_head(self, n_out: int, kind: str | None = None, **head_kwargs: Any) -> None:
        """Replace the head with a fresh one (same kind unless ``kind`` is given; the
        distribution is ``head_kwargs["distribution"]``, ``"none"`` by default).

        The residual is turned off; :meth:`set_residual` sets it for the new outputs.
        """
        ref = next(self.backbone.parameters())
        head = create_head(kind or self.head.kind, self.backbone.out_channels, n_out, **head_kwargs)
        self.head = head.to(device=ref.device, dtype=ref.dtype)
        self.set_residual(None)

    def set_periodic_lon(self, periodic_lon: bool) -> None:
        """Switch circular longitude padding (global grid or not); weights are unchanged."""
        self.backbone.set_periodic_lon(periodic_lon)
        if isinstance(self.stem, VariableTokenStem):
            self.stem.set_periodic_lon(periodic_lon)

    # -- parameter groups ------------------------------------------------------------------
    def module_groups(self) -> dict[str, nn.Module]:
        """Group name -> module: ``stem``, ``backbone.stage{i}``, ``head``."""
        groups: dict[str, nn.Module] = {"stem": self.stem}
        for i, stage in enumerate(self.backbone.stages()):
            groups[f"backbone.stage{i}"] = stage
        groups["head"] = self.head
        return groups

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Group name -> parameters, input to output; every parameter appears once."""
        groups = {k: list(m.parameters()) for k, m in self.module_groups().items()}
        seen = [id(p) for ps in groups.values() for p in ps]
        if len(seen) != len(set(seen)) or set(seen) != {id(p) for p in self.parameters()}:
            raise RuntimeError(
                f"{type(self.backbone).__name__}.stages() do not partition its parameters"
            )
        return groups

    def match_groups(self, patterns: str | Iterable[str]) -> list[str]:
        """Group names matching glob ``patterns``; ``"backbone"`` matches ``backbone.*``."""
        names = list(self.module_groups())
        patterns = [patterns] if isinstance(patterns, str) else list(patterns)
        out: list[str] = []
        for pat in patterns:
            hits = [g for g in names if fnmatch.fnmatchcase(g, pat) or g.startswith(pat + ".")]
            if not hits:
                raise ClimatuneError(
                    f"no parameter group matches '{pat}'{closest(pat, names)}; "
                    f"the groups are: {', '.join(names)}"
                )
            out += [g for g in hits if g not in out]
        return [g for g in names if g in out]

    def freeze(self, groups: str | Iterable[str] = "*") -> list[str]:
        """Stop gradients for the matching groups (see :meth:`match_groups`); returns them."""
        return self._set_trainable(groups, False)

    def unfreeze(self, groups: str | Iterable[str] = "*") -> list[str]:
        """Re-enable gradients for the matching groups; returns them."""
        return self._set_trainable(groups, True)

    def _set_trainable(self, groups: str | Iterable[str], flag: bool) -> list[str]:
        matched = self.match_groups(groups)
        params = self.param_groups()
        for g in matched:
            for p in params[g]:
                p.requires_grad_(flag)
        return matched

    # -- spec ------------------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        """A JSON-able description that :meth:`from_spec` rebuilds the network from."""
        return {
            "spec_version": SPEC_VERSION if self.distribution != "none" else 2,
            "backbone": self.backbone.backbone_name,
            "backbone_kwargs": dict(self.backbone.hparams),
            "variables": self.variables,
            "history": self.stem.history,
            "n_static": self.stem.n_static,
            "head": self.head.kind,
            "n_out": self.head.n_out,
            "head_kwargs": dict(self.head.hparams),
            "residual_index": list(self.residual_index),
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> ClimateNet:
        """Rebuild a network, with fresh weights, from :meth:`spec`.

        A version-1 spec (before the residual was part of it) has no residual.
        """
        version = spec.get("spec_version", SPEC_VERSION)
        if version not in _SPEC_VERSIONS:
            raise ClimatuneError(
                f"model spec version {version} is not supported (this ClimaTune reads "
                f"{SPEC_VERSION}); upgrade climatune to load this model"
            )
        missing = [k for k in _SPEC_KEYS if k not in spec]
        if missing:
            raise ClimatuneError(f"model spec is missing {missing}; the artifact is incomplete")
        kwargs = dict(spec["backbone_kwargs"])
        backbone = create_backbone(spec["backbone"], **kwargs)
        stem = backbone.make_stem(spec["variables"], spec["history"], spec["n_static"])
        legacy = head_class(spec["head"]).legacy_hparams if spec["head"] in list_heads() else {}
        head_kwargs = {**legacy, **spec.get("head_kwargs", {})}
        head = create_head(spec["head"], backbone.out_channels, spec["n_out"], **head_kwargs)
        return cls(stem, backbone, head, spec.get("residual_index"))


def build_net(
    backbone: str,
    variables: Sequence[str],
    history: int = 1,
    n_static: int = 0,
    n_out: int = 1,
    head: str = "field",
    *,
    periodic_lon: bool = False,
    grid_shape: Sequence[int] | None = None,
    head_kwargs: Mapping[str, Any] | None = None,
    residual_index: Sequence[int] | None = None,
    distribution: str = "none",
    **backbone_kw: Any,
) -> ClimateNet:
    """Build a :class:`ClimateNet` from a registered backbone name and its options.

    Parameters
    ----------
    backbone, backbone_kw
        The registered backbone and its options (``width``, ``depth``, ...).
    variables, history, n_static
        The stem's inputs: variable names, steps per variable, static channels.
    n_out, head, head_kwargs
        Outputs, the kind of head and its options.
    periodic_lon, grid_shape
        The data context: whether the grid is global in longitude, and its (lat, lon)
        size. Each is handed to the backbones whose constructor takes it by that name.

    ``residual_index`` is described in :meth:`ClimateNet.set_residual` (none by default);
    ``distribution`` is what the head predicts (``"none"`` or ``"gaussian"``, see
    :meth:`ClimateNet.forward_dist`).

    Examples
    --------
    >>> import torch
    >>> net = build_net("unet", ["tas", "psl"], history=2, n_static=3, n_out=1, width=8, depth=2)
    >>> net(torch.zeros(1, 2, 2, 24, 48), torch.zeros(3, 24, 48)).shape
    torch.Size([1, 1, 24, 48])
    """
    context = {"periodic_lon": periodic_lon, "grid_shape": grid_shape}
    takes = inspect.signature(backbone_class(backbone)).parameters
    data = {k: v for k, v in context.items() if k in takes and v is not None}
    bb = create_backbone(backbone, **data, **backbone_kw)
    stem = bb.make_stem(variables, history, n_static)
    head_kwargs = {**(head_kwargs or {}), "distribution": distribution}
    head_module = create_head(head, bb.out_channels, n_out, **head_kwargs)
    return ClimateNet(stem, bb, head_module, residual_index)
