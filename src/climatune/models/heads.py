"""Task heads: features ``[B, C, H, W]`` to fields or to scalars."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from climatune.errors import ClimatuneError, closest

__all__ = ["Head", "FieldHead", "ScalarHead", "create_head", "HEADS"]


class Head(nn.Module):
    """Base class: ``forward(feats, mask=None)``; ``kind`` and ``hparams`` rebuild it."""

    kind: ClassVar[str] = ""
    n_out: int
    hparams: dict[str, Any]


class FieldHead(Head):
    """A 1x1 convolution: ``[B, in_ch, H, W] -> [B, n_out, H, W]``; ``mask`` is ignored."""

    kind = "field"

    def __init__(self, in_ch: int, n_out: int) -> None:
        super().__init__()
        self.n_out = n_out
        self.hparams = {}
        self.proj = nn.Conv2d(in_ch, n_out, 1)

    def forward(self, feats: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.proj(feats)


class ScalarHead(Head):
    """Masked mean pooling over grid cells, then an MLP: ``-> [B, n_out]``.

    ``mask`` (``[H, W]``, ``[B, H, W]`` or ``[B, 1, H, W]``, bool or non-negative
    weights) selects the cells pooled, such as the valid cells of a region; by default
    every cell counts.
    """

    kind = "scalar"

    def __init__(self, in_ch: int, n_out: int, hidden: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_out = n_out
        self.hparams = {"hidden": hidden, "dropout": dropout}
        self.mlp = nn.Sequential(
            nn.Linear(in_ch, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, n_out)
        )

    def forward(self, feats: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is None:
            pooled = feats.mean(dim=(-2, -1))
        else:
            w = mask.to(feats.dtype)
            w = w.view(1, 1, *w.shape) if w.ndim == 2 else w
            w = w.unsqueeze(1) if w.ndim == 3 else w
            pooled = (feats * w).sum(dim=(-2, -1)) / w.sum(dim=(-2, -1)).clamp_min(1e-12)
        return self.mlp(pooled)


HEADS: dict[str, type[Head]] = {cls.kind: cls for cls in (FieldHead, ScalarHead)}


def create_head(kind: str, in_ch: int, n_out: int, **kwargs: Any) -> Head:
    """Build a head of ``kind`` (``"field"`` or ``"scalar"``).

    Examples
    --------
    >>> import torch
    >>> create_head("scalar", 32, 1, hidden=16)(torch.zeros(2, 32, 5, 7)).shape
    torch.Size([2, 1])
    """
    if kind not in HEADS:
        raise ClimatuneError(
            f"unknown head '{kind}'{closest(kind, HEADS)}; choose one of: {', '.join(HEADS)}"
        )
    return HEADS[kind](in_ch, n_out, **kwargs)
