"""``finetune.strategy: ridge_probe``: a closed-form ridge readout on frozen features.

With tens to hundreds of samples, gradient descent on a new head is noisy and early
stopping picks a lucky epoch; a linear probe fitted exactly is the honest minimum a
pretrained backbone should reach. The backbone stays frozen; the head becomes a
:class:`~climatune.models.heads.ReadoutHead` whose weights are the ridge solution on the
standardised features of every cell, with the penalty chosen by cross-validation over
contiguous blocks of training years.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from climatune.data.normalize import Normalizer
from climatune.data.samples import TaskSamples
from climatune.data.splits import fold_blocks
from climatune.data.view import TaskView
from climatune.errors import ClimatuneError
from climatune.models.heads import ReadoutHead

__all__ = ["RidgeProbe", "fit_ridge_probe"]

ALPHAS = 10.0 ** np.arange(-4.0, 5.0)  # penalties, relative to the mean eigenvalue of z zᵀ


@dataclass
class RidgeProbe:
    """What :func:`fit_ridge_probe` chose: the penalty (relative to the mean eigenvalue of
    the standardised features' Gram matrix) and each penalty's CV mean-squared error."""

    alpha: float
    cv_mse: dict[float, float]
    folds: list[tuple[int, int]]

    def describe(self) -> str:
        blocks = ", ".join(f"{a}-{b}" for a, b in self.folds)
        return (
            f"ridge readout fitted in closed form, alpha={self.alpha:.3g} "
            f"(blocked CV over {blocks}: MSE {self.cv_mse[self.alpha]:.3g})"
        )


@torch.no_grad()
def _features(
    net: nn.Module, view: TaskView, normalizer: Normalizer, static: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Frozen features ``(n, C*H*W)`` and normalised targets ``(n,)`` of the training samples."""
    samples = TaskSamples(view, "train", normalizer, mask_ratio=0.0)
    net.eval()
    feats, targets = [], []
    for batch in torch.utils.data.DataLoader(samples, batch_size=32):
        s = static.expand(batch["fields"].shape[0], *static.shape[-3:])
        feats.append(net.forward_features(batch["fields"], s).flatten(1).double().numpy())
        targets.append(batch["target"][:, 0].double().numpy())
    return np.concatenate(feats), np.concatenate(targets)


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean, std = x.mean(0), x.std(0)
    std = np.where(std > 0, std, 1.0)
    return (x - mean) / std, mean, std


def _dual_ridge(z: np.ndarray, y: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Dual coefficients ``(A, n)`` of ridge on ``z`` for each penalty, by one eigensolve.

    The primal weights are ``zᵀ a``: with far more features (every cell) than samples,
    the ``n × n`` system is the cheap one.
    """
    lam, u = np.linalg.eigh(z @ z.T)
    uy = u.T @ (y - y.mean())
    return (u @ (uy[:, None] / (np.clip(lam, 0, None)[:, None] + alphas[None, :]))).T


def _blocked_cv(
    x: np.ndarray, y: np.ndarray, spans: np.ndarray, years: np.ndarray, folds: int
) -> tuple[dict[float, float], list[tuple[int, int]], float]:
    """Mean-squared error of each relative penalty over contiguous blocks of years.

    A sample is held out when its anchor year is in the block, and trains only when no
    step it reads (``spans``: the years of its inputs and target) is in the block.
    """
    first, last = int(years.min()), int(years.max())
    blocks = fold_blocks(first, last, min(folds, last - first + 1))
    scale = float(np.mean(np.sum(_standardise(x)[0] ** 2, 1)))  # trace(z zᵀ) / n
    sse, count = np.zeros(ALPHAS.size), 0
    for lo, hi in blocks:
        held = (years >= lo) & (years <= hi)
        train = ~((spans >= lo) & (spans <= hi)).any(1)
        if not held.any() or train.sum() < 3:
            continue
        z, mean, std = _standardise(x[train])
        coef = _dual_ridge(z, y[train], ALPHAS * scale)
        cross = ((x[held] - mean) / std) @ z.T
        pred = coef @ cross.T + y[train].mean()  # (A, n_held)
        sse += ((pred - y[held]) ** 2).sum(1)
        count += int(held.sum())
    if count == 0:
        raise ClimatuneError(
            "ridge_probe needs at least 2 training years to choose its penalty; widen data.split.train"
        )
    return dict(zip(ALPHAS.tolist(), (sse / count).tolist())), blocks, scale


def fit_ridge_probe(
    net: nn.Module,
    view: TaskView,
    normalizer: Normalizer,
    static: torch.Tensor,
    *,
    folds: int = 5,
) -> RidgeProbe:
    """Replace ``net``'s head with the ridge readout of its frozen features; ``net`` is changed.

    Parameters
    ----------
    net
        A :class:`~climatune.models.net.ClimateNet` adapted to ``view``'s inputs.
    view, normalizer, static
        The index task, its statistics and the static inputs the network reads.
    folds
        Contiguous blocks of training years for choosing the penalty.

    A Gaussian head (``model.head_distribution: gaussian``) becomes a Gaussian readout: the
    ridge solution is its mean, and its scale is one constant per output, the root of
    the chosen penalty's cross-validated mean-squared error (homoscedastic).
    """
    if not view.is_scalar:
        raise ClimatuneError(
            f"finetune.strategy=ridge_probe fits a scalar readout; it needs an index task, not {view.kind}"
        )
    x, y = _features(net, view, normalizer, static)
    anchors = view.anchors["train"]
    year = view.fields.time.dt.year.values
    spans = year[anchors[:, None] + np.arange(1 - view.history, view.lead + 1)[None, :]]
    cv_mse, blocks, scale = _blocked_cv(x, y, spans, year[anchors], folds)
    alpha = min(cv_mse, key=cv_mse.get)
    z, mean, std = _standardise(x)
    coef = _dual_ridge(z, y, np.array([alpha * scale]))
    weight = (z.T @ coef[0]) / std  # on the raw features
    grid = tuple(view.fields.lat.shape + view.fields.lon.shape)
    distribution = getattr(net.head, "distribution", "none")
    head = ReadoutHead(net.backbone.out_channels, 1, grid, distribution=distribution)
    head.proj.weight.data[0] = torch.from_numpy(weight).float()
    head.proj.bias.data[0] = float(y.mean() - weight @ mean)
    if distribution == "gaussian":  # one scale: the CV root-mean-square error
        head.set_output(scale=torch.tensor([float(np.sqrt(cv_mse[alpha]))]))
    head.fresh = False  # solved: no starting point to set
    net.head = head.to(next(net.backbone.parameters()).device)
    return RidgeProbe(alpha=float(alpha), cv_mse=cv_mse, folds=blocks)
