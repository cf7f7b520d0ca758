"""The starting point of a fresh Gaussian head: its mean at the residual base, its scale at
the base's error.

A fresh head's scale channels would start at softplus(0) ≈ 0.69 normalised standard
deviations; a downscaler's errors are a few hundredths of that, and with a fine-tuning
learning rate the scale never gets there (measured on the demo: a spread-skill ratio of
2.6 after 30 epochs). So a fresh Gaussian head starts with its mean weights at zero (the
network predicts its residual base: persistence, the bilinear field, or 0) and each
output's scale at the weighted root-mean-square error of that start on training samples,
a calibrated homoscedastic Gaussian from which training learns the rest.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from climatune.data.normalize import Normalizer
from climatune.data.samples import TaskSamples
from climatune.data.view import TaskView
from climatune.models.net import ClimateNet
from climatune.training.task import ClimateTask

__all__ = ["INIT_SAMPLES", "initialise_gaussian_head"]

INIT_SAMPLES = 64  #: training samples the starting scale is measured on, spread over the split


@torch.no_grad()
def initialise_gaussian_head(
    task: ClimateTask, view: TaskView, normalizer: Normalizer, *, mask_ratio: float = 0.0
) -> bool:
    """Start ``task.net``'s Gaussian head as the module docstring says, if it is fresh.

    A head with trained weights (loaded from an artifact, or solved by a ridge probe) is
    left alone. Returns whether the head was initialised.
    """
    net = task.net
    if not isinstance(net, ClimateNet) or net.distribution != "gaussian" or not net.head.fresh:
        return False
    head = net.head
    static, cell_weight = torch.as_tensor(task.static), torch.as_tensor(task.weight)
    samples = TaskSamples(view, "train", normalizer, mask_ratio=mask_ratio)
    picks = np.unique(np.linspace(0, len(samples) - 1, min(INIT_SAMPLES, len(samples))).astype(int))
    head.set_output(mean=0.0)  # the mean starts at the residual base
    sse = torch.zeros(net.n_out, dtype=torch.float64)
    weight = torch.zeros(net.n_out, dtype=torch.float64)
    was_training = net.training
    net.eval()
    for batch in DataLoader(Subset(samples, picks.tolist()), batch_size=16):
        fields, target = batch["fields"], batch["target"]
        mean, _ = net.forward_dist(fields, static.expand(fields.shape[0], *static.shape))
        valid = torch.isfinite(target)
        w = valid.double()
        if mean.dim() == 4:
            w = w * cell_weight.double()
        err = torch.where(valid, mean.double() - torch.nan_to_num(target.double()), 0.0)
        axes = [0, *range(2, mean.dim())]
        sse += (w * err.square()).sum(axes)
        weight += w.sum(axes)
    net.train(was_training)
    rms = torch.sqrt(sse / weight.clamp_min(1e-12)).float()
    head.set_output(scale=torch.where(weight > 0, rms, torch.ones_like(rms)))
    return True
