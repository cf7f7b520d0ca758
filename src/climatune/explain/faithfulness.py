"""Faithfulness: does deleting the most-attributed inputs change the target most?

A deletion curve replaces the top k % of input cells (k = 0, 1, 2, 5, 10, ..., 50),
ranked by |attribution|, with their baseline (the climatology) and records the mean
|change| of the target; a second curve deletes cells in a seeded random order. The ratio of the areas under the two curves is
above 1 when the attribution finds the cells that matter.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from climatune.utils.atomic import atomic_path

__all__ = ["FRACTIONS", "deletion_curves", "write_faithfulness"]

# 0, 1, 2, 5, 10, 15, ..., 50 %: the first points tell methods apart, since a few cells
# (a teleconnection source region, say) often carry the whole signal
FRACTIONS = (0.0, 0.01, 0.02) + tuple(round(0.05 * i, 2) for i in range(1, 11))
_CHUNK = 16  # samples per forward pass


def _area(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


@torch.no_grad()
def _curve(
    func: nn.Module,
    x: torch.Tensor,
    base: torch.Tensor,
    orders: list[np.ndarray],
    fractions: np.ndarray,
    ref: torch.Tensor,
) -> np.ndarray:
    """Mean |f(x with the first k cells of each order deleted) - f(x)| per fraction."""
    flat_x, flat_b = x.reshape(x.shape[0], -1), base.reshape(x.shape[0], -1)
    out = []
    for frac in fractions:
        deleted = flat_x.clone()
        for i, order in enumerate(orders):
            top = torch.from_numpy(order[: int(round(frac * order.size))])
            deleted[i, top] = flat_b[i, top]
        values = torch.cat([func(c) for c in deleted.view_as(x).split(_CHUNK)])
        out.append(float((values - ref).abs().mean()))
    return np.asarray(out)


def deletion_curves(
    func: nn.Module,
    x: torch.Tensor,
    baseline: torch.Tensor,
    attribution: np.ndarray,
    *,
    fractions: Sequence[float] = FRACTIONS,
    seed: int = 0,
) -> dict[str, Any]:
    """Deletion curves by attribution and at random, and the ratio of their areas.

    Only valid cells (finite attribution) are ranked and deleted.
    """
    flat = np.abs(attribution.reshape(attribution.shape[0], -1))
    rng = np.random.default_rng(seed)
    ranked, shuffled = [], []
    for row in flat:
        cells = np.flatnonzero(np.isfinite(row))
        ranked.append(cells[np.argsort(-row[cells], kind="stable")])
        shuffled.append(rng.permutation(cells))
    func.eval()
    with torch.no_grad():
        ref = torch.cat([func(c) for c in x.split(_CHUNK)])
    frac = np.asarray(fractions, dtype=float)
    by_attr = _curve(func, x, baseline, ranked, frac, ref)
    random = _curve(func, x, baseline, shuffled, frac, ref)
    auc_attr, auc_random = _area(frac, by_attr), _area(frac, random)
    return {
        "fractions": frac.tolist(),
        "attribution": by_attr.tolist(),
        "random": random.tolist(),
        "auc_attribution": auc_attr,
        "auc_random": auc_random,
        "ratio": auc_attr / auc_random if auc_random > 0 else None,
        "seed": seed,
        "samples": int(x.shape[0]),
    }


def write_faithfulness(result: dict[str, Any], out: Path, **meta: Any) -> Path:
    """``faithfulness.json``: the curves, their areas and the ratio, plus ``meta``."""
    path = out / "faithfulness.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({**meta, **result}, indent=2))
    return path
