"""Figures the report draws itself, returned as PNG bytes ready to embed.

Uses matplotlib's object API (``Figure``, no ``pyplot``), so no global state or GUI
backend is touched and figures never leak. Spacing is set by hand and the saved area is
cropped to the drawn artists (``bbox_inches="tight"``): constrained layout costs twice the
drawing time for these simple plots.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["png_bytes", "data_uri", "loss_curves", "efficiency_curve", "rmse_bars"]

_DPI = 100


def png_bytes(fig: Figure) -> bytes:
    """Render ``fig`` to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI for an ``<img src>``."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def loss_curves(histories: Mapping[str, Mapping[str, Sequence[tuple[int, float]]]]) -> bytes | None:
    """Train and validation loss against epoch, one panel per run; the best val epoch is marked.

    ``histories`` maps a run name to ``{"train": [(epoch, loss)], "val": [...]}``.
    """
    runs = {name: h for name, h in histories.items() if any(h.values())}
    if not runs:
        return None
    ncols = min(3, len(runs))
    nrows = math.ceil(len(runs) / ncols)
    fig = Figure(figsize=(4.6 * ncols, 3.2 * nrows))
    fig.subplots_adjust(wspace=0.3, hspace=0.45)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (name, hist) in zip(axes, runs.items()):
        for stage, style in (("train", "-"), ("val", "--")):
            pts = hist.get(stage) or []
            if pts:
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    style,
                    marker="o",
                    markersize=3,
                    label=f"{stage} loss",
                )
        val = hist.get("val") or []
        if val:
            epoch, best = min(val, key=lambda p: p[1])
            ax.plot(
                [epoch],
                [best],
                "*",
                color="crimson",
                markersize=11,
                label=f"best val (epoch {epoch})",
            )
        values = [v for pts in hist.values() for _, v in pts if v > 0]
        if values and max(values) / min(values) > 30:
            ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (normalised units)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(runs) :]:
        ax.set_visible(False)
    return png_bytes(fig)


def efficiency_curve(gaps: Mapping[str, Sequence[Mapping[str, float]]]) -> bytes | None:
    """Test RMSE against training samples, fine-tuned and scratch, one panel per variable."""
    if not gaps:
        return None
    fig = Figure(figsize=(4.8 * min(3, len(gaps)), 3.4))
    fig.subplots_adjust(wspace=0.3)
    axes = fig.subplots(1, min(3, len(gaps)), squeeze=False).ravel()
    for ax, (var, cells) in zip(axes, gaps.items()):
        for model in ("finetuned", "scratch"):
            pts = sorted(
                (c["n_train"], c[model]) for c in cells if math.isfinite(c.get(model, math.nan))
            )
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=model)
        ax.set_title(f"{var}: data efficiency", fontsize=10)
        ax.set_xlabel("training samples")
        ax.set_ylabel("test RMSE")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return png_bytes(fig)


def rmse_bars(
    values: Mapping[str, float], *, variable: str, units: str, highlight: str | None
) -> bytes | None:
    """Horizontal bars of test RMSE per model, best at the top; ``highlight`` in colour."""
    items = sorted(((m, v) for m, v in values.items() if math.isfinite(v)), key=lambda mv: mv[1])
    if len(items) < 2:
        return None
    fig = Figure(figsize=(6.4, 0.8 + 0.32 * len(items)))
    ax = fig.subplots()
    colors = [
        "#d1495b" if m == highlight else ("#edae49" if m == "scratch" else "#8d99ae")
        for m, _ in items
    ]
    ax.barh([m for m, _ in items], [v for _, v in items], color=colors)
    ax.invert_yaxis()
    ax.set_xlabel(f"test RMSE{f' ({units})' if units else ''}")
    ax.set_title(f"{variable}: RMSE by model (lower is better)", fontsize=10)
    ax.tick_params(labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    return png_bytes(fig)


def rank_histograms(ranks: Mapping[str, Sequence[float]], *, variable: str) -> bytes | None:
    """One panel per ensemble: the relative frequency of each rank of the truth among the
    members, with the flat line of a calibrated ensemble."""
    items = [(m, list(v)) for m, v in ranks.items() if len(v) >= 2]
    if not items:
        return None
    fig = Figure(figsize=(3.2 * len(items), 2.6))
    axes = fig.subplots(1, len(items), squeeze=False)[0]
    for ax, (model, values) in zip(axes, items):
        ax.bar(range(1, len(values) + 1), values, color="#8d99ae", width=0.85)
        ax.axhline(1 / len(values), color="#d1495b", lw=1, ls="--", label="calibrated")
        ax.set_title(f"{variable}: {model}", fontsize=9)
        ax.set_xlabel("rank of the truth", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel("relative frequency", fontsize=8)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return png_bytes(fig)
