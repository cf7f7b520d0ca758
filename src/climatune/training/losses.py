"""Losses: latitude-weighted and NaN-masked, so land cells of an SST field never count."""

from __future__ import annotations

import math

import torch

__all__ = ["gaussian_crps", "scored_cells", "weighted_gaussian_crps", "weighted_mse"]


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


def scored_cells(target: torch.Tensor, weight: torch.Tensor | None = None) -> int:
    """How many target cells a loss scores: finite, with a positive weight.

    A batch where this is 0 (every target missing, or outside the scored region) has no
    loss at all; the weighted losses above return 0 for it, which is no measurement.

    Examples
    --------
    >>> scored_cells(torch.tensor([[float("nan"), 1.0]]))
    1
    """
    valid = torch.isfinite(target)
    if weight is not None:
        valid = valid & (weight > 0)
    return int(valid.sum())


def gaussian_crps(mean: torch.Tensor, scale: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
    """The CRPS of N(mean, scale²) for ``obs``, cell by cell, in closed form.

    CRPS = σ [z (2 Φ(z) − 1) + 2 φ(z) − 1/√π] with z = (y − μ) / σ (Gneiting and
    Raftery 2007): a proper score, in the units of ``obs``, equal to |μ − y| as σ → 0.

    Examples
    --------
    >>> round(float(gaussian_crps(torch.tensor(0.0), torch.tensor(1.0), torch.tensor(0.0))), 4)
    0.2337
    """
    z = (obs - mean) / scale
    normal = torch.distributions.Normal(torch.zeros((), dtype=z.dtype), 1.0)
    cdf, pdf = normal.cdf(z), normal.log_prob(z).exp()
    return scale * (z * (2.0 * cdf - 1.0) + 2.0 * pdf - 1.0 / math.sqrt(math.pi))


def weighted_gaussian_crps(
    mean: torch.Tensor,
    scale: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Σ w m CRPS(N(μ, σ²), y) / Σ w m over finite target cells: the Gaussian head's loss.

    Weighted and masked as :func:`weighted_mse` is; ``mean`` and ``scale`` (positive)
    are shaped like ``target``.
    """
    valid = torch.isfinite(target)
    obs = torch.where(valid, target.float(), mean.detach().float())
    crps = torch.where(valid, gaussian_crps(mean.float(), scale.float(), obs), 0.0)
    w = valid.float()
    if weight is not None:
        w = w * weight
    return (w * crps).sum() / w.sum().clamp_min(1e-12)
