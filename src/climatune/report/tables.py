"""The numbers of the report: the metric table, its best cells, the verdict, the curve gaps.

Pure functions over the rows that ``evaluate`` and ``curve`` write, kept apart from the
HTML so that the claims the report makes can be tested directly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from climatune.report.collect import to_float

__all__ = [
    "METRIC_ORDER",
    "NETWORKS",
    "MetricTable",
    "metric_table",
    "best_of",
    "main_model",
    "verdict",
    "curve_gaps",
    "fmt",
    "digits_to_separate",
]

METRIC_ORDER = ("rmse", "mae", "bias", "acc", "skill", "corr")
_LOWER = {"rmse", "mae"}
_HIGHER = {"acc", "skill", "corr"}
# Model labels written by ``evaluate`` for networks; every other label is a baseline.
NETWORKS = ("finetuned", "pretrained", "scratch")
# Skill (1 - MSE / MSE_reference) is stated against these, the references of DESIGN.md.
_REFERENCES = ("climatology", "damped_persistence")

Column = tuple[str, str]  # (variable, metric)


@dataclass
class MetricTable:
    """Models × (variable, metric) values of one split, with the best models per column."""

    split: str
    models: list[str]
    columns: list[Column]
    values: dict[tuple[str, Column], float] = field(default_factory=dict)
    best: dict[Column, set[str]] = field(default_factory=dict)

    def value(self, model: str, column: Column) -> float:
        """The value of a cell (NaN when missing)."""
        return self.values.get((model, column), math.nan)


def best_of(values: dict[str, float], metric: str) -> set[str]:
    """Models with the best value: lowest rmse/mae, lowest ``|bias|``, highest acc/skill/corr.

    NaN never wins; ties all win; an unknown metric has no best.
    """
    finite = {k: v for k, v in values.items() if math.isfinite(v)}
    if not finite:
        return set()
    if metric in _LOWER:
        key = finite
    elif metric == "bias":
        key = {k: abs(v) for k, v in finite.items()}
    elif metric in _HIGHER:
        key = {k: -v for k, v in finite.items()}
    else:
        return set()
    top = min(key.values())
    return {k for k, v in key.items() if v == top}


def _ordered_models(models: Iterable[str]) -> list[str]:
    models = list(dict.fromkeys(models))
    nets = [m for m in NETWORKS if m in models]
    return nets + [m for m in models if m not in nets]


def metric_table(rows: Sequence[dict[str, Any]], split: str = "test") -> MetricTable | None:
    """Pivot metric rows of ``split`` (or of the only split present) into a table.

    Networks come first (finetuned, pretrained, scratch), then baselines in file order.
    Returns ``None`` when there are no usable rows.
    """
    rows = [r for r in rows if isinstance(r, dict) and {"model", "variable", "metric"} <= set(r)]
    splits = list(dict.fromkeys(str(r.get("split", "test")) for r in rows))
    if not splits:
        return None
    if split not in splits:
        split = splits[0]
    rows = [r for r in rows if str(r.get("split", "test")) == split]
    variables = list(dict.fromkeys(str(r["variable"]) for r in rows))
    metrics = {str(r["metric"]) for r in rows}
    order = [m for m in METRIC_ORDER if m in metrics] + sorted(metrics - set(METRIC_ORDER))
    columns = [
        (v, m)
        for v in variables
        for m in order
        if any(r["variable"] == v and r["metric"] == m for r in rows)
    ]
    table = MetricTable(split, _ordered_models(str(r["model"]) for r in rows), columns)
    for r in rows:
        table.values[(str(r["model"]), (str(r["variable"]), str(r["metric"])))] = to_float(
            r.get("value")
        )
    for col in columns:
        table.best[col] = best_of({m: table.value(m, col) for m in table.models}, col[1])
    return table


def main_model(models: Sequence[str]) -> str | None:
    """The network the report judges: finetuned, else pretrained, else scratch."""
    return next((m for m in NETWORKS if m in models), None)


def digits_to_separate(values: Iterable[float], lo: int = 3, hi: int = 6) -> int:
    """Fewest significant digits (``lo``..``hi``) that print different values differently."""
    uniq = {v for v in values if math.isfinite(v)}
    for d in range(lo, hi + 1):
        if len({f"{v:.{d}g}" for v in uniq}) == len(uniq):
            return d
    return hi


def fmt(value: float, digits: int = 3) -> str:
    """A number with ``digits`` significant digits; ``–`` for NaN."""
    return "–" if not math.isfinite(value) else f"{value:.{digits}g}"


def _names(items: list[tuple[str, float]], d: int, limit: int = 4) -> str:
    parts = [f"{name} ({fmt(v, d)})" for name, v in items[:limit]]
    if len(items) > limit:
        parts.append(f"{len(items) - limit} more")
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]


def verdict(table: MetricTable, variable: str, units: str = "") -> tuple[str, bool] | None:
    """One honest line: does the judged network beat scratch and every baseline on RMSE?

    The judged network is :func:`main_model`; another network (``pretrained`` next to
    ``finetuned``) stays in the table but is not a competitor. Ties and missing scores are
    said, not hidden. A network no better than the climatology is said to have no skill,
    whatever else it beats, and its skill against the climatology and damped persistence
    (``1 - MSE / MSE_reference``, on the cells every model is scored on) closes the line.

    Returns
    -------
    The sentence and whether the network wins outright, or ``None`` without an RMSE
    column for ``variable``.
    """
    col = (variable, "rmse")
    if col not in table.columns:
        return None
    main = main_model(table.models)
    scored = {m: table.value(m, col) for m in table.models if math.isfinite(table.value(m, col))}
    if main is None or main not in scored:
        return f"{variable}: no network was scored, only baselines", False
    own = scored[main]
    others = {m: v for m, v in scored.items() if m != main and m not in ("pretrained", "finetuned")}
    d = digits_to_separate([own, *others.values()])
    unit = f" {units}" if units else ""
    head = f"{main}: {variable} RMSE {fmt(own, d)}{unit}"
    baselines = {m: v for m, v in others.items() if m != "scratch"}
    beaten = sorted(((m, v) for m, v in others.items() if v > own), key=lambda mv: mv[1])
    lost = sorted(
        ((m, v) for m, v in others.items() if v < own), key=lambda mv: (mv[0] != "scratch", mv[1])
    )
    tied = [(m, v) for m, v in others.items() if v == own]
    wins = []
    if "scratch" in dict(beaten):
        wins.append(f"scratch ({fmt(others['scratch'], d)})")
    n_beaten = sum(m != "scratch" for m, _ in beaten)
    if baselines and n_beaten:
        if len(baselines) == 1:
            wins.append(f"the {next(iter(baselines))} baseline")
        elif n_beaten == len(baselines):
            wins.append(f"all {len(baselines)} baselines")
        else:
            wins.append(f"{n_beaten} of {len(baselines)} baselines")
    if not others:
        return (
            f"{head} — nothing to compare with: no scratch run and no baselines were scored",
            False,
        )
    parts = []
    clim = baselines.get("climatology")
    useless = clim is not None and own >= clim
    if useless and clim is not None:
        parts.append(
            f"no skill: worse than the climatology ({fmt(clim, d)}), whatever else it beats"
        )
    if wins:
        parts.append("beats " + " and ".join(wins))
    elif baselines:
        n = "the baseline" if len(baselines) == 1 else f"any of the {len(baselines)} baselines"
        parts.append(
            f"beats neither scratch nor {n}" if "scratch" in others else f"does not beat {n}"
        )
    if lost:
        parts.append("loses to " + _names(lost, d))
    if tied:
        parts.append("ties " + _names(tied, d))
    if "scratch" not in others and main != "scratch":
        parts.append("no scratch run to compare with")
    if not baselines:
        parts.append("no baselines were scored")
    unscored = [m for m in table.models if m not in scored and m not in ("pretrained", "finetuned")]
    if unscored:
        parts.append(f"no finite RMSE for {', '.join(unscored)}")
    skills = [
        f"{fmt(1.0 - (own / ref) ** 2, 2)} against {name.replace('_', ' ')}"
        for name, ref in baselines.items()
        if name in _REFERENCES and ref > 0
    ]
    if skills:
        parts.append("skill " + ", ".join(skills))
    return f"{head} — " + "; ".join(parts), not lost and not tied and not useless


def curve_gaps(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, float]]]:
    """Per variable, fine-tuned vs scratch test RMSE at each fraction.

    ``gap`` is scratch minus fine-tuned: positive means pre-training helps.
    """
    out: dict[str, list[dict[str, float]]] = {}
    cells: dict[tuple[str, float], dict[str, float]] = {}
    for r in rows:
        if not isinstance(r, dict) or r.get("metric") != "rmse":
            continue
        key = (str(r.get("variable", "")), to_float(r.get("fraction")))
        cell = cells.setdefault(key, {"fraction": key[1], "n_train": to_float(r.get("n_train"))})
        cell[str(r.get("model"))] = to_float(r.get("value"))
    for (var, _), cell in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        cell["gap"] = cell.get("scratch", math.nan) - cell.get("finetuned", math.nan)
        out.setdefault(var, []).append(cell)
    return out
