"""Attribution methods over one scalar target: Captum (IG, saliency, occlusion, LIME) and SHAP.

Every method returns an array shaped like the inputs, ``[n, V, history, H, W]``, in the
target's units. Block methods (occlusion, LIME) spread each block's effect evenly over its
cells, so sums over cells compare across methods as they do for integrated gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from climatune.errors import ClimatuneError, closest

__all__ = ["METHODS", "Settings", "attribute", "check_method", "block_mask", "tiling"]

METHODS = ("ig", "saliency", "occlusion", "lime", "shap")
_CELL_BUDGET = 1 << 18  # grid cells per forward/backward chunk: bounds activation memory


@dataclass
class Settings:
    """Knobs of the methods; the defaults keep a 64x128 grid to minutes on a CPU.

    ``blocks`` is the number of (lat, lon) occlusion windows / LIME superpixels per
    variable and step; ``lime_samples`` defaults to twice the superpixels plus 64.
    """

    n_steps: int = 32
    batch_size: int | None = None
    blocks: tuple[int, int] = (4, 8)
    lime_samples: int | None = None
    shap_samples: int = 64
    seed: int = 0
    used: dict[str, Any] = field(default_factory=dict)

    def chunk(self, shape: torch.Size) -> int:
        """Samples per forward/backward chunk for a ``[.., H, W]`` input."""
        return self.batch_size or max(1, min(64, _CELL_BUDGET // (shape[-2] * shape[-1])))


def tiling(n: int, count: int) -> tuple[int, int]:
    """(window, stride) along an axis of ``n`` cells: about ``count`` windows that cover it
    exactly, overlapping by at most half a window (so no edge cell is left out)."""
    width = max(1, math.ceil(n / max(count, 1)))
    for w in range(width, n + 1):
        for s in range(w, max(1, math.ceil(w / 2)) - 1, -1):
            if (n - w) % s == 0:
                return w, s
    return n, n  # pragma: no cover - w = n always tiles


def block_mask(shape: torch.Size, blocks: tuple[int, int]) -> Tensor:
    """Feature ids ``[1, V, T, H, W]``: one superpixel per (variable, step, lat block, lon block)."""
    _, v, t, h, w = shape
    bh, bw = math.ceil(h / blocks[0]), math.ceil(w / blocks[1])
    rows = torch.arange(h) // bh
    cols = torch.arange(w) // bw
    ny, nx = int(rows.max()) + 1, int(cols.max()) + 1
    plane = rows[:, None] * nx + cols[None, :]
    layer = torch.arange(v * t).view(v, t, 1, 1) * (ny * nx)
    return (layer + plane).unsqueeze(0)


@contextmanager
def _input_grads_only(module: nn.Module) -> Iterator[None]:
    """Skip weight gradients (a third of the backward cost) while attributing."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _ig(func: nn.Module, x: Tensor, base: Tensor, s: Settings) -> Tensor:
    from captum.attr import IntegratedGradients

    ig = IntegratedGradients(func)
    attr, delta = ig.attribute(
        x,
        baselines=base,
        n_steps=s.n_steps,
        internal_batch_size=s.chunk(x.shape),
        return_convergence_delta=True,
    )
    with torch.no_grad():
        span = (func(x) - func(base)).abs().mean().clamp_min(1e-12)
    s.used.update(n_steps=s.n_steps, completeness_error=float(delta.abs().mean() / span))
    return attr


def _saliency(func: nn.Module, x: Tensor, base: Tensor, s: Settings) -> Tensor:
    from captum.attr import Saliency

    sal = Saliency(func)
    size = s.chunk(x.shape)
    return torch.cat(
        [sal.attribute(x[i : i + size], abs=False) for i in range(0, x.shape[0], size)]
    )


def _occlusion(func: nn.Module, x: Tensor, base: Tensor, s: Settings) -> Tensor:
    from captum.attr import Occlusion

    (wh, sh), (ww, sw) = tiling(x.shape[-2], s.blocks[0]), tiling(x.shape[-1], s.blocks[1])
    s.used.update(window=[wh, ww], stride=[sh, sw])
    attr = Occlusion(func).attribute(
        x,
        sliding_window_shapes=(1, 1, wh, ww),
        strides=(1, 1, sh, sw),
        baselines=base,
        perturbations_per_eval=s.chunk(x.shape),
    )
    return attr / (wh * ww)


def _lime(func: nn.Module, x: Tensor, base: Tensor, s: Settings) -> Tensor:
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import Lime

    mask = block_mask(x.shape, s.blocks)
    n_features = int(mask.max()) + 1
    n_samples = s.lime_samples or 2 * n_features + 64
    s.used.update(superpixels=n_features, lime_samples=n_samples, surrogate="ridge(alpha=1)")
    sizes = torch.bincount(mask.flatten(), minlength=n_features).to(x.dtype)
    lime = Lime(func, interpretable_model=SkLearnRidge(alpha=1.0))
    out = []
    with torch.random.fork_rng(devices=[]):  # seeded perturbations, global RNG untouched
        torch.manual_seed(s.seed)
        for i in range(x.shape[0]):  # one surrogate per sample
            coef = lime.attribute(
                x[i : i + 1],
                baselines=base[i : i + 1],
                feature_mask=mask,
                n_samples=n_samples,
                perturbations_per_eval=s.chunk(x.shape),
            )
            out.append(coef / sizes[mask])
    return torch.cat(out)


class _Column(nn.Module):
    """``[B] -> [B, 1]``: SHAP's explainers want a 2-D output."""

    def __init__(self, func: nn.Module) -> None:
        super().__init__()
        self.func = func

    def forward(self, x: Tensor) -> Tensor:
        return self.func(x).unsqueeze(-1)


def _shap(
    func: nn.Module, x: Tensor, base: Tensor, s: Settings, background: Tensor | None
) -> Tensor:
    try:
        import shap
    except ImportError as exc:  # pragma: no cover - shap is a dependency
        raise ClimatuneError("--method shap needs SHAP: pip install shap") from exc
    if background is None:
        raise ClimatuneError("--method shap needs background samples from the train split")
    state = np.random.get_state()  # noqa: NPY002 - shap reseeds the global generator
    try:
        explainer = shap.GradientExplainer(_Column(func), background, batch_size=s.chunk(x.shape))
        values = explainer.shap_values(x, nsamples=s.shap_samples, rseed=s.seed)
    finally:
        np.random.set_state(state)  # noqa: NPY002
    s.used.update(shap_samples=s.shap_samples, background=int(background.shape[0]))
    values = np.asarray(values[0] if isinstance(values, list) else values)
    return torch.from_numpy(values.reshape(x.shape).astype(np.float32))


_METHODS: dict[str, Callable[..., Tensor]] = {
    "ig": _ig,
    "saliency": _saliency,
    "occlusion": _occlusion,
    "lime": _lime,
}


def check_method(method: str) -> str:
    """Return ``method`` if known, else raise a ClimatuneError naming the choices."""
    if method not in METHODS:
        raise ClimatuneError(
            f"unknown attribution method '{method}'{closest(method, METHODS)}; choose one of: {', '.join(METHODS)}"
        )
    return method


def attribute(
    method: str,
    func: nn.Module,
    x: Tensor,
    baseline: Tensor,
    *,
    valid: np.ndarray | None = None,
    background: Tensor | None = None,
    settings: Settings | None = None,
) -> np.ndarray:
    """Attributions of ``func`` (``[n, V, T, H, W] -> [n]``) at ``x``; NaN on invalid cells.

    Parameters
    ----------
    method
        One of :data:`METHODS`.
    func
        The target function (e.g. :class:`~climatune.explain.targets.TargetFunction`).
    x, baseline
        Inputs and the reference they are compared with (IG, occlusion, LIME).
    valid
        ``[V, H, W]`` cells where each input is defined; others come back NaN.
    background
        Training samples, for SHAP.
    """
    s = settings or Settings()
    func.eval()
    with _input_grads_only(func):
        if check_method(method) == "shap":
            attr = _shap(func, x, baseline, s, background)
        else:
            attr = _METHODS[method](func, x.detach(), baseline.detach(), s)
    out = attr.detach().float().numpy()
    if valid is not None:
        out = np.where(valid[None, :, None], out, np.nan).astype(np.float32)
    return out
