"""Pretraining objectives weighed together, and random crops of the training samples.

A forecast pretraining run may add masked reconstruction of its inputs as a second
objective (``task.objectives``): the same backbone, with the inputs' squares hidden, feeds
a head of its own (:class:`Reconstruction`), and the loss is the weighted sum of the
objectives' losses. The head serves training only: the artifact holds the forecasting
network, which is what fine-tuning starts from.

A run may also train on random windows of its grid (``task.random_crop``,
:class:`RandomCrop`); the windows and masks are drawn by :mod:`climatune.data.windows`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from climatune.data.settings import TaskConfig
from climatune.data.view import TaskView
from climatune.data.windows import (
    check_window,
    crops_batch,
    draw_windows,
    keep_masks,
    window_size,
)
from climatune.errors import ClimatuneError
from climatune.models.net import ClimateNet
from climatune.models.registry import create_head
from climatune.training.losses import weighted_mse

__all__ = [
    "check_training_task",
    "pretraining_settings",
    "random_crop",
    "weighed_objectives",
    "Reconstruction",
    "RandomCrop",
    "Window",
    "take_window",
]


def take_window(x: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Each sample's window of ``x[B, ..., H, W]``: ``rows[B, h]``, ``cols[B, w]`` -> ``[B, ..., h, w]``."""
    b, (h, w) = x.shape[0], (rows.shape[1], cols.shape[1])
    cells = x.reshape(b, -1, *x.shape[-2:]).permute(0, 2, 3, 1)  # [B, H, W, M]
    picked = cells[
        torch.arange(b, device=x.device)[:, None, None], rows[:, :, None], cols[:, None, :]
    ]
    return picked.permute(0, 3, 1, 2).reshape(*x.shape[:-2], h, w)


@dataclass
class Window:
    """One training batch's tensors, whole or cropped: what every objective's loss reads.

    ``static`` is ``[B, S, H, W]``; ``weight`` the loss weights (``[H, W]``, or
    ``[B, 1, h, w]`` for windows); ``periodic`` whether longitude wraps.
    """

    fields: Tensor
    target: Tensor
    static: Tensor
    weight: Tensor
    periodic: bool
    rows: Tensor | None = None
    cols: Tensor | None = None

    def cut(self, x: Tensor) -> Tensor:
        """``x[B, ..., H, W]`` in this batch's windows (itself when it is whole)."""
        if self.rows is None or self.cols is None:
            return x
        return take_window(x, self.rows, self.cols)


class RandomCrop:
    """Random windows of ``size`` (lat, lon) cells for a share ``prob`` of training batches.

    Parameters
    ----------
    size, prob
        ``task.random_crop``.
    grid
        The training grid's ``(lat, lon)`` size.
    periodic_lon
        Whether the grid is global: windows then wrap across the longitude seam.
    seed
        The run's seed; windows are drawn from ``(seed, epoch, anchor)``.
    min_size
        ``task.random_crop.min_size``: each cropped batch draws its windows' size
        between it and ``size`` (:func:`~climatune.data.windows.window_size`).
    """

    def __init__(
        self,
        size: tuple[int, int],
        prob: float,
        grid: tuple[int, int],
        periodic_lon: bool,
        seed: int = 0,
        min_size: tuple[int, int] | None = None,
    ) -> None:
        self.size, self.prob, self.grid = tuple(size), prob, grid
        self.periodic_lon, self.seed = periodic_lon, seed
        self.min_size = None if min_size is None else tuple(min_size)

    def __call__(self, whole: Window, anchors: Tensor, epoch: int, batch: int) -> Window:
        """``whole`` cut to each sample's window, or ``whole`` when this batch is not cropped."""
        if not crops_batch(self.seed, epoch, batch, self.prob):
            return whole
        size = window_size(self.seed, epoch, batch, self.size, self.min_size)
        rows, cols = draw_windows(
            anchors.tolist(),
            seed=self.seed,
            epoch=epoch,
            grid=self.grid,
            size=size,
            periodic_lon=self.periodic_lon,
        )
        device = whole.fields.device
        win = Window(
            whole.fields,
            whole.target,
            whole.static,
            whole.weight,
            # a full ring of longitudes, started anywhere, still wraps
            periodic=self.periodic_lon and size[1] == self.grid[1],
            rows=torch.from_numpy(rows).to(device),
            cols=torch.from_numpy(cols).to(device),
        )
        b = whole.fields.shape[0]
        weight = whole.weight.expand(b, 1, *whole.weight.shape[-2:])
        return Window(
            win.cut(whole.fields),
            win.cut(whole.target) if whole.target.dim() == 4 else whole.target,
            win.cut(whole.static),
            win.cut(weight),
            win.periodic,
            win.rows,
            win.cols,
        )


class Reconstruction(nn.Module):
    """Masked reconstruction of the inputs at step t beside another objective.

    Squares of ``mask_patch`` cells are hidden in every input step (so that no step
    gives the hidden cells away); the shared network's features of the masked inputs go
    through a head of this module's own, plus, with ``residual``, the masked fields at
    step t, and are scored against the fields at step t where they are valid.

    Parameters
    ----------
    width
        The backbone's output channels.
    valid
        ``[V, H, W]``: the cells where each input is defined (NaN-free at the first step,
        such as sea cells for SST); fields hold 0 elsewhere, which is never a target.
    residual
        Add the masked fields at step t to the head's output.
    mask_ratio, mask_patch, seed
        The masks, drawn from ``(seed, epoch, anchor)`` (:func:`~climatune.data.windows.keep_masks`).
    """

    valid: Tensor

    def __init__(
        self,
        width: int,
        valid: Tensor,
        *,
        residual: bool = True,
        mask_ratio: float = 0.5,
        mask_patch: int = 4,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.head = create_head("field", width, int(valid.shape[0]))
        self.register_buffer("valid", valid.bool(), persistent=False)
        self.residual, self.mask_ratio, self.mask_patch, self.seed = (
            residual,
            mask_ratio,
            mask_patch,
            seed,
        )

    def masks(self, anchors: Tensor, shape: tuple[int, int], epoch: int | None) -> Tensor:
        """``[B, H, W]`` keep-masks: new each training ``epoch``; ``None`` (validation):
        the same every epoch."""
        keep = keep_masks(
            anchors.tolist(),
            seed=self.seed,
            epoch=0 if epoch is None else epoch + 1,
            shape=shape,
            mask_patch=self.mask_patch,
            ratio=self.mask_ratio,
        )
        return torch.from_numpy(np.ascontiguousarray(keep))

    def loss(self, net: ClimateNet, win: Window, anchors: Tensor, epoch: int | None) -> Tensor:
        """The latitude-weighted MSE of the reconstructed fields at step t."""
        fields = win.fields
        shape = (int(fields.shape[-2]), int(fields.shape[-1]))
        keep = self.masks(anchors, shape, epoch).to(fields.device)
        masked = fields * keep[:, None, None].to(fields.dtype)
        out = self.head(net.forward_features(masked, win.static))
        if self.residual:
            out = out + masked[:, :, -1]
        valid = win.cut(self.valid.expand(fields.shape[0], *self.valid.shape))
        target = torch.where(valid, fields[:, :, -1], torch.nan)
        return weighted_mse(out, target, win.weight)


def check_training_task(task: TaskConfig, view: TaskView) -> None:
    """Refuse ``task.random_crop`` where it cannot apply, before anything is written."""
    if task.random_crop is None:
        return
    if view.is_scalar:
        raise ClimatuneError(
            "task.random_crop is for gridded targets: an index task's target is one series "
            "for the whole domain, which a window cannot score; drop task.random_crop"
        )
    check_window(task.random_crop.size, _grid(view))


def _grid(view: TaskView) -> tuple[int, int]:
    return int(view.fields.sizes["lat"]), int(view.fields.sizes["lon"])


def random_crop(task: TaskConfig, view: TaskView, seed: int) -> RandomCrop | None:
    """The random windows ``task.random_crop`` asks for on ``view``'s grid, or None."""
    if task.random_crop is None:
        return None
    check_training_task(task, view)
    spec = task.random_crop
    return RandomCrop(spec.size, spec.prob, _grid(view), view.periodic_lon, seed, spec.min_size)


def weighed_objectives(
    task: TaskConfig, view: TaskView, width: int, *, residual: bool, seed: int
) -> tuple[dict[str, float] | None, Reconstruction | None]:
    """The weights of ``task.objectives`` and the reconstruction head they need.

    ``(None, None)`` when the task's own objective is the only one, at weight 1: the
    training is then exactly that of a run without ``task.objectives``. The head's
    weights are drawn from ``seed``, leaving the global random state as it was.
    """
    weights = task.objectives
    if weights is None or weights == {view.kind: 1.0}:
        return None, None
    if "reconstruct" not in weights or view.kind == "reconstruct":
        return dict(weights), None
    valid = np.stack([np.isfinite(view.fields[n].isel(time=0).values) for n in view.inputs])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = Reconstruction(
            width,
            torch.from_numpy(valid),
            residual=residual,
            mask_ratio=task.mask_ratio,
            mask_patch=task.mask_patch,
            seed=seed,
        )
    return dict(weights), head


def pretraining_settings(task: TaskConfig) -> list[str]:
    """The keys of ``task`` that only pretraining reads, where they are set (a lone
    objective weighed 1, the default, is not counted)."""
    keys = []
    if task.objectives is not None and task.objectives != {task.kind: 1.0}:
        keys.append("task.objectives")
    if task.random_crop is not None:
        keys.append("task.random_crop")
    return keys
