"""PNG maps of truth, prediction, error and per-cell RMSE."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from climatune.utils.atomic import atomic_path

__all__ = ["plot_maps", "save_figure"]


def save_figure(fig: Figure, path: Path) -> Path:
    """Save ``fig`` atomically as PNG.

    Figures are plain :class:`~matplotlib.figure.Figure` objects (no pyplot), so drawing
    never touches the user's matplotlib backend or pyplot's figure list.
    """
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return path


def _panel(ax: Axes, da: xr.DataArray, title: str, cmap: str, center: bool = False) -> None:
    values = da.values
    finite = values[np.isfinite(values)]
    kw = {}
    if finite.size:
        if center:
            lim = float(np.abs(finite).max()) or 1.0
            kw = {"vmin": -lim, "vmax": lim}
        else:
            kw = {"vmin": float(finite.min()), "vmax": float(finite.max())}
    mesh = ax.pcolormesh(da.lon, da.lat, values, cmap=cmap, shading="auto", **kw)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("lon (°E)", fontsize=8)
    ax.set_ylabel("lat (°N)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.figure.colorbar(mesh, ax=ax, shrink=0.8, label=da.attrs.get("units", ""))


def plot_maps(
    pred: xr.Dataset,
    truth: xr.Dataset,
    out: Path,
    *,
    label: str = "model",
    weights: xr.DataArray | None = None,
) -> list[Path]:
    """One PNG per variable: last test step's truth and prediction, mean error, per-cell RMSE.

    Cells whose ``weights`` are 0 (outside the scored region) are left blank.
    """
    paths = []
    for name in pred.data_vars:
        if "lat" not in pred[name].dims:
            continue
        p = pred[name] if weights is None else pred[name].where(weights > 0)
        t = truth[name].where(p.notnull())
        units = t.attrs.get("units", "")
        last = str(t.time.values[-1])[:10]
        fig = Figure(figsize=(16, 3.4), layout="constrained")
        axes = fig.subplots(1, 4)
        _panel(
            axes[0], t.isel(time=-1).assign_attrs(units=units), f"truth {name} ({last})", "RdYlBu_r"
        )
        _panel(
            axes[1],
            p.isel(time=-1).assign_attrs(units=units),
            f"{label} prediction ({last})",
            "RdYlBu_r",
        )
        _panel(
            axes[2],
            (p - t).mean("time").assign_attrs(units=units),
            "mean error (pred − truth)",
            "RdBu_r",
            center=True,
        )
        _panel(
            axes[3],
            np.sqrt(((p - t) ** 2).mean("time")).assign_attrs(units=units),
            "RMSE per cell",
            "viridis",
        )
        paths.append(save_figure(fig, out / f"map_{label}_{name}.png"))
    return paths
