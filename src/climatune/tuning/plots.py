"""Figures of a study: the optimisation history and the parameter importances.

Drawn on :class:`matplotlib.figure.Figure` objects (no pyplot state), so worker threads can
save them safely.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import optuna
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from optuna.trial import TrialState

from climatune.utils.atomic import atomic_path

__all__ = ["plot_history", "plot_importance", "save_figure"]


def save_figure(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as PNG through a temporary name."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def plot_history(study: optuna.Study, label: str = "objective") -> Figure:
    """Each complete trial's value, the best so far, and where pruned trials stopped."""
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.add_subplot()
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE and _finite(t.value)]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    if done:
        ax.plot(
            [t.number for t in done], [t.value for t in done], "o", color="C0", label="complete"
        )
        best, xs, ys = None, [], []
        better = min if study.direction.name == "MINIMIZE" else max
        for t in done:
            best = t.value if best is None else better(best, t.value)
            xs.append(t.number)
            ys.append(best)
        ax.step(xs, ys, where="post", color="C3", label="best so far")
    if pruned:
        last = [t.intermediate_values[max(t.intermediate_values)] for t in pruned]
        ax.plot([t.number for t in pruned], last, "x", color="0.5", label="pruned (last fold mean)")
    if not done and not pruned:
        ax.text(0.5, 0.5, "no finished trial yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(label)
    ax.set_title(f"Optimisation history ({len(done)} complete, {len(pruned)} pruned)")
    if done or pruned:
        ax.legend(fontsize="small")
    return fig


def plot_importance(study: optuna.Study) -> Figure:
    """fANOVA importance of each parameter; a note instead when it cannot be computed yet."""
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.add_subplot()
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    reason = ""
    importances: dict[str, float] = {}
    if len(done) < 2:
        reason = f"importances need at least 2 complete trials ({len(done)} so far)"
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                importances = optuna.importance.get_param_importances(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            reason = f"importances unavailable: {exc}"
        if not importances and not reason:
            reason = "importances unavailable: the complete trials share no varying parameter"
    if reason:
        ax.text(0.5, 0.5, reason, ha="center", va="center", wrap=True, transform=ax.transAxes)
        ax.set_axis_off()
    else:
        names = list(importances)[::-1]
        ax.barh(names, [importances[n] for n in names], color="C0")
        ax.set_xlabel("importance (fANOVA, share of variance)")
    ax.set_title(f"Parameter importances ({len(done)} complete trials)")
    return fig


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
