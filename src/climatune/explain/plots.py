"""Figures of an explanation: attribution maps, the interaction heatmap, deletion curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from climatune.explain.interactions import Interactions
from climatune.utils.atomic import atomic_path

__all__ = ["plot_attribution_maps", "plot_interactions", "plot_faithfulness"]


def save_figure(fig: Figure, path: Path) -> Path:
    """Save ``fig`` atomically as PNG (its constrained layout already fits it).

    Figures are plain :class:`~matplotlib.figure.Figure` objects (no pyplot), so drawing
    never touches the user's matplotlib backend or pyplot's figure list.
    """
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def _edges(centres: np.ndarray, k: int) -> np.ndarray:
    """``k`` points per cell spanning each cell from edge to edge."""
    step = np.gradient(centres) if centres.size > 1 else np.ones(1)
    frac = (np.arange(k) + 0.5) / k - 0.5
    return (centres[:, None] + frac[None, :] * step[:, None]).ravel()


def _outline(ax: Axes, region: xr.DataArray, k: int = 8) -> None:
    """Draw the boundary of a boolean ``(lat, lon)`` mask along cell edges."""
    fine = np.kron(region.transpose("lat", "lon").values.astype(float), np.ones((k, k)))
    ax.contour(
        _edges(region.lon.values, k),
        _edges(region.lat.values, k),
        fine,
        levels=[0.5],
        colors="cyan",
        linewidths=1.2,
    )


def plot_attribution_maps(
    attribution: xr.DataArray, region: xr.DataArray | None, path: Path, *, title: str
) -> Path:
    """One panel per input variable: mean |attribution| over samples (and steps).

    ``region`` (a boolean ``(lat, lon)`` mask) is outlined on every panel.
    """
    mean = abs(attribution).mean([d for d in ("sample", "lag") if d in attribution.dims])
    names = [str(v) for v in mean["variable"].values]
    ncol = min(len(names), 3)
    nrow = -(-len(names) // ncol)
    aspect = mean.lon.size / max(mean.lat.size, 1)
    fig = Figure(figsize=(4.2 * ncol, 4.2 * nrow / aspect + 0.9), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False)
    vmax = float(np.nanmax(mean.values)) if np.isfinite(mean.values).any() else 1.0
    for ax, name in zip(axes.flat, names):
        panel = mean.sel(variable=name)
        mesh = ax.pcolormesh(
            panel.lon,
            panel.lat,
            panel.values,
            cmap="magma_r",
            shading="auto",
            vmin=0.0,
            vmax=vmax or 1.0,
        )
        if region is not None and not bool(region.all()):
            _outline(ax, region)
        comp = (
            str(attribution.component.sel(variable=name).values)
            if "component" in attribution.coords
            else ""
        )
        ax.set_title(f"{name} ({comp})" if comp else name, fontsize=9)
        ax.set_xlabel("lon (°E)", fontsize=8)
        ax.set_ylabel("lat (°N)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    fig.colorbar(
        mesh,
        ax=axes,
        shrink=0.8,
        label=f"mean |attribution| ({attribution.attrs.get('units', '')})",
    )
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def _heat(ax: Axes, values: np.ndarray, rows: list[str], cols: list[str], title: str) -> Any:
    image = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_title(title, fontsize=9)
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(
                j,
                i,
                f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if v < 0.6 else "black",
            )
    return image


def plot_interactions(table: Interactions, path: Path) -> Path:
    """Heatmaps of the shares: targets × input variables, and targets × components."""
    targets = list(table.rows)
    comps = list(table.component_shares(targets[0]))
    by_var = np.array([[table.rows[t][v] for v in table.variables] for t in targets])
    by_comp = np.array([[table.component_shares(t)[c] for c in comps] for t in targets])
    # each panel wide enough for its title, even with one column
    panels = [max(0.7 * len(table.variables), 1.9), max(0.7 * len(comps), 1.9)]
    fig = Figure(figsize=(2.0 + sum(panels), 1.6 + 0.45 * len(targets)), layout="constrained")
    axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": panels})
    _heat(axes[0], by_var, targets, table.variables, "share by input variable")
    image = _heat(axes[1], by_comp, targets, comps, "share by component")
    axes[1].set_yticks([])
    fig.colorbar(image, ax=axes, shrink=0.9, label="share of |attribution|")
    fig.suptitle(f"what drives each target ({table.method})", fontsize=10)
    return save_figure(fig, path)


def plot_faithfulness(result: dict[str, Any], path: Path, *, title: str) -> Path:
    """The deletion curves by attribution and at random."""
    frac = 100 * np.asarray(result["fractions"])
    fig = Figure(figsize=(5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(
        frac,
        result["attribution"],
        "o-",
        label=f"by |attribution| (AUC {result['auc_attribution']:.3g})",
    )
    ax.plot(
        frac,
        result["random"],
        "s--",
        color="grey",
        label=f"random (AUC {result['auc_random']:.3g})",
    )
    ratio = result.get("ratio")
    ax.set_title(f"{title}\nratio {ratio:.2f}" if ratio is not None else title, fontsize=9)
    ax.set_xlabel("input cells replaced by the baseline (%)", fontsize=8)
    ax.set_ylabel(f"mean |change| of the target ({result.get('units', '')})", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    return save_figure(fig, path)
