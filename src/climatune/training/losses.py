"""Losses: latitude-weighted and NaN-masked, so land cells of an SST field never count."""

from __future__ import annotations

import torch

__all__ = ["weighted_mse"]


def weighted_mse(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Σ w m (ŷ − y)² / Σ w m over finite target cells.

    Parameters
    ----------
    pred, target
        ``[B, V, H, W]`` fields (or ``[B, V]`` scalars); NaN in ``target`` marks masked cells.
    weight
        ``[H, W]`` latitude × region weights; ``None`` weighs every cell equally.
    """
    valid = torch.isfinite(target)
    diff = torch.where(valid, pred.float() - torch.nan_to_num(target.float()), 0.0)
    w = valid.float()
    if weight is not None:
        w = w * weight
    return (w * diff.square()).sum() / w.sum().clamp_min(1e-12)
