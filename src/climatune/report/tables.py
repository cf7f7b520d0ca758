"""The numbers of the report: the metric table, its best cells, the verdict, the curve gaps.

Pure functions over the rows that ``evaluate`` and ``curve`` write, kept apart from the
HTML so that the claims the report makes can be tested directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from climatune.report.collect import to_float
from climatune.report.skill import REFERENCES, network_skills, skill_lines, usefulness

__all__ = [
    "METRIC_ORDER",
    "PROBABILISTIC_METRICS",
    "is_probabilistic",
    "is_network",
    "probabilistic_lines",
    "probabilistic_table",
    "NETWORKS",
    "MetricTable",
    "metric_table",
    "best_of",
    "main_model",
    "verdict",
    "verdicts",
    "table_rmse",
    "interval_text",
    "curve_gaps",
    "fmt",
    "digits_to_separate",
]

METRIC_ORDER = ("rmse", "mae", "bias", "acc", "skill", "corr")
PROBABILISTIC_METRICS = ("crps", "spread_skill", "pit_alpha")
_LOWER = {"rmse", "mae"}
_HIGHER = {"acc", "skill", "corr"}
# Model labels written by ``evaluate`` for networks; every other label is a baseline.
NETWORKS = ("finetuned", "pretrained", "scratch")

Column = tuple[str, str]  # (variable, metric)
Pair = tuple[str, str, str]  # (model, reference, variable)


@dataclass
class MetricTable:
    """Models × (variable, metric) values of one split, with the best models per column.

    ``intervals`` holds the comparison rows (those with a ``reference``): the RMSE
    difference of a model and a reference with its bootstrap interval.
    """

    split: str
    models: list[str]
    columns: list[Column]
    values: dict[tuple[str, Column], float] = field(default_factory=dict)
    best: dict[Column, set[str]] = field(default_factory=dict)
    intervals: dict[Pair, dict[str, Any]] = field(default_factory=dict)

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


def is_probabilistic(metric: str) -> bool:
    """Whether ``metric`` scores an ensemble (CRPS, spread-skill, PIT, rank histogram): such
    rows have their own section, not a column of the metric table."""
    return metric in PROBABILISTIC_METRICS or metric.startswith("rank_hist_")


def is_network(model: str) -> bool:
    """Whether a probabilistic row's ``model`` is a network: one of :data:`NETWORKS`, or
    one of them dressed with the spread it lacks on its training years (``NAME_dressed``)."""
    return model in NETWORKS or model.removesuffix("_dressed") in NETWORKS


def probabilistic_table(
    rows: Sequence[dict[str, Any]],
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per variable and model, the probabilistic scores of the rows (:func:`is_probabilistic`).

    Each model's entry holds ``crps``, ``spread_skill``, ``pit_alpha``, ``rmse`` (of the
    ensemble mean, where the rows have it: a network's, or a dressed baseline's own) and
    ``ranks``, the rank histogram in rank order, and for a Gaussian head the
    ``estimator`` of its CRPS. Models come in order of CRPS, best first. Empty when no row is probabilistic.
    """
    rows = [r for r in rows if isinstance(r, dict) and {"model", "variable", "metric"} <= set(r)]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        metric = str(r["metric"])
        if not is_probabilistic(metric):
            continue
        entry = out.setdefault(str(r["variable"]), {}).setdefault(str(r["model"]), {"ranks": {}})
        if metric.startswith("rank_hist_"):
            entry["ranks"][int(metric.removeprefix("rank_hist_"))] = to_float(r.get("value"))
        else:
            entry[metric] = to_float(r.get("value"))
        if metric == "crps" and r.get("estimator"):  # a Gaussian head's, say how it is scored
            entry["estimator"] = str(r["estimator"])
    for r in rows:  # a dressed baseline's mean is the baseline itself
        if r["metric"] != "rmse" or "reference" in r:
            continue
        models = out.get(str(r["variable"]), {})
        for name in (str(r["model"]), f"{r['model']}_dressed"):
            if name in models:
                models[name]["rmse"] = to_float(r.get("value"))
    for var, models in out.items():
        for entry in models.values():
            entry["ranks"] = [entry["ranks"][k] for k in sorted(entry["ranks"])]
        out[var] = dict(
            sorted(models.items(), key=lambda kv: _nan_last(kv[1].get("crps", math.nan)))
        )
    return out


def probabilistic_lines(rows: Sequence[dict[str, Any]], units: dict[str, str]) -> list[str]:
    """One line per variable and network ensemble: its CRPS against the best probabilistic
    baseline's, with the interval of the difference where the rows have it
    (``crps_diff``), and its spread-skill ratio. Empty without probabilistic rows."""
    lines = []
    diffs = {
        (str(r["model"]), str(r["variable"])): r
        for r in rows
        if isinstance(r, dict) and r.get("metric") == "crps_diff"
    }
    for var, models in probabilistic_table(rows).items():
        unit = f" {units[var]}" if units.get(var) else ""
        baselines = [(m, e) for m, e in models.items() if not is_network(m)]
        for model, entry in models.items():
            if not is_network(model):
                continue
            name = model
            what = "Gaussian head" if entry.get("estimator") else "ensemble"
            if model.endswith("_dressed"):
                model, what = model.removesuffix("_dressed"), "ensemble dressed"
            text = f"{var} {model} {what}: CRPS {fmt(entry.get('crps', math.nan))}{unit}"
            if entry.get("estimator"):
                text += f" ({entry['estimator']})"
            if baselines:
                best, other = baselines[0]  # in order of CRPS
                text += f" (best probabilistic baseline {best}: {fmt(other.get('crps', math.nan))}{unit}"
                iv = diffs.get((name, var))
                text += f"; {interval_text(iv, units.get(var, ''))})" if iv else ")"
            ratio = entry.get("spread_skill", math.nan)
            lines.append(f"{text}, spread/skill {ratio:.2f}")
    return lines


def _nan_last(value: float) -> float:
    return value if math.isfinite(value) else math.inf


def metric_table(rows: Sequence[dict[str, Any]], split: str = "test") -> MetricTable | None:
    """Pivot metric rows of ``split`` (or of the only split present) into a table.

    Networks come first (finetuned, pretrained, scratch), then baselines in file order.
    Returns ``None`` when there are no usable rows.
    """
    rows = [
        r
        for r in rows
        if isinstance(r, dict)
        and {"model", "variable", "metric"} <= set(r)
        and not is_probabilistic(str(r["metric"]))
    ]
    splits = list(dict.fromkeys(str(r.get("split", "test")) for r in rows))
    if not splits:
        return None
    if split not in splits:
        split = splits[0]
    rows = [r for r in rows if str(r.get("split", "test")) == split]
    pairs = [r for r in rows if "reference" in r and r["metric"] == "rmse_diff"]
    rows = [r for r in rows if "reference" not in r]
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
    for r in pairs:
        key = (str(r["model"]), str(r["reference"]), str(r["variable"]))
        table.intervals[key] = dict(r)
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


def interval_text(interval: dict[str, Any], units: str = "") -> str:
    """``Δ -0.018 K, 95 % CI [-0.031, -0.0052], block 3`` and, when the interval covers
    zero, ``, not significant``; empty for an interval that could not be computed.

    Two significant digits, or up to four where fewer would print the bounds alike.
    """
    diff, low, high = (to_float(interval.get(k)) for k in ("value", "ci_low", "ci_high"))
    if not all(map(math.isfinite, (diff, low, high))):
        return ""
    unit = f" {units}" if units else ""
    level = to_float(interval.get("level"))
    d = digits_to_separate((diff, low, high), 2, 4)
    text = (
        f"Δ {diff:+.{d}g}{unit}, {100 * level:g} % CI [{low:+.{d}g}, {high:+.{d}g}], "
        f"block {interval.get('block_length')}"
    )
    return text + (", not significant" if _covers_zero(interval) else "")


def _covers_zero(interval: dict[str, Any]) -> bool:
    return to_float(interval.get("ci_low")) <= 0.0 <= to_float(interval.get("ci_high"))


def _names(
    items: list[tuple[str, float]],
    d: int,
    limit: int = 4,
    note: Callable[[str], str] = lambda name: "",
) -> str:
    parts = [f"{name} ({fmt(v, d)}{note(name)})" for name, v in items[:limit]]
    if len(items) > limit:
        parts.append(f"{len(items) - limit} more")
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]


def verdict(
    table: MetricTable, variable: str, units: str = "", lead: int | None = None
) -> tuple[str, bool] | None:
    """One honest line: does the judged network beat scratch and every baseline on RMSE?

    The judged network is :func:`main_model`; another network (``pretrained`` next to
    ``finetuned``) stays in the table but is not a competitor. Ties and missing scores are
    said, not hidden. A network no better than the climatology is said plainly to be not
    useful at this lead (:func:`~climatune.report.skill.usefulness`), whatever else it
    beats, and its skill against the climatology and damped persistence
    (``1 - MSE / MSE_reference``, on the cells every model is scored on; at ``lead`` when
    given) closes the line.

    Where the rows hold comparisons (``evaluate`` writes them), each named competitor
    carries the 95 % interval of the RMSE difference (:func:`interval_text`); a win whose
    interval covers zero is said to be not significant and is no outright win.

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
    intervals = {
        ref: iv for (m, ref, var), iv in table.intervals.items() if m == main and var == variable
    }

    def note(name: str) -> str:
        text = interval_text(intervals.get(name, {}), units)
        return f"; {text}" if text else ""

    wins = []
    if "scratch" in dict(beaten):
        wins.append(f"scratch ({fmt(others['scratch'], d)}{note('scratch')})")
    beaten_baselines = [(m, v) for m, v in beaten if m != "scratch"]
    n_beaten = len(beaten_baselines)
    if baselines and n_beaten:
        closest, value = beaten_baselines[0]
        extra = note(closest)
        if len(baselines) == 1:
            wins.append(f"the {closest} baseline" + (f" ({extra[2:]})" if extra else ""))
        else:
            every = n_beaten == len(baselines)
            count = f"all {n_beaten}" if every else f"{n_beaten} of {len(baselines)}"
            closer = f" (closest: {closest} {fmt(value, d)}{extra})" if extra else ""
            wins.append(f"{count} baselines{closer}")
    doubtful = [m for m, _ in beaten if m in intervals and _covers_zero(intervals[m])]
    if not others:
        return (
            f"{head} — nothing to compare with: no scratch run and no baselines were scored",
            False,
        )
    parts = []
    skills = network_skills(scored, [main])[main]
    plain = usefulness(skills)
    useless = plain is not None
    if plain is not None:
        parts.append(f"{plain}, whatever else it beats")
    if wins:
        parts.append("beats " + " and ".join(wins))
    elif baselines:
        n = "the baseline" if len(baselines) == 1 else f"any of the {len(baselines)} baselines"
        parts.append(
            f"beats neither scratch nor {n}" if "scratch" in others else f"does not beat {n}"
        )
    named = {"scratch", *(m for m, _ in beaten_baselines[:1])}
    unnamed = [m for m in doubtful if m not in named]
    if unnamed:
        parts.append(f"the gain on {', '.join(unnamed)} is not significant")
    if lost:
        parts.append("loses to " + _names(lost, d, note=note))
    if tied:
        parts.append("ties " + _names(tied, d, note=note))
    if "scratch" not in others and main != "scratch":
        parts.append("no scratch run to compare with")
    if not baselines:
        parts.append("no baselines were scored")
    unscored = [m for m in table.models if m not in scored and m not in ("pretrained", "finetuned")]
    if unscored:
        parts.append(f"no finite RMSE for {', '.join(unscored)}")
    stated = [
        f"{fmt(skills[name], 2)} against {name.replace('_', ' ')}"
        for name in baselines
        if name in REFERENCES and math.isfinite(skills.get(name, math.nan))
    ]
    if stated:
        at = f" at lead {lead}:" if lead is not None else ""
        parts.append(f"skill{at} " + ", ".join(stated))
    used = [intervals[m] for m in others if m in intervals]
    if used:
        parts.append(
            f"Δ = {main} RMSE minus theirs, with its interval from a paired circular block "
            f"bootstrap over {used[0].get('n_times')} test times"
        )
    outright = not lost and not tied and not useless and not doubtful
    return f"{head} — " + "; ".join(parts), outright


def verdicts(
    rows: Sequence[dict[str, Any]], units: dict[str, str], lead: int | None = None
) -> list[str]:
    """The :func:`verdict` line of each variable of the metric rows (``units`` by variable),
    each followed by one ``  vs NAME: Δ ...`` line per comparison of the judged network,
    then the skill of every network against the climatology and damped persistence at
    ``lead`` (:func:`~climatune.report.skill.skill_lines`)."""
    table = metric_table(rows)
    if table is None:
        return []
    main = main_model(table.models)
    lines = []
    for var in dict.fromkeys(v for v, _ in table.columns):
        result = verdict(table, var, units.get(var, ""), lead)
        if result:
            lines.append(result[0])
        pairs = [(ref, iv) for (m, ref, v), iv in table.intervals.items() if (m, v) == (main, var)]
        for ref, iv in sorted(pairs, key=lambda p: to_float(p[1].get("value"))):
            lines.append(f"  vs {ref}: {interval_text(iv, units.get(var, '')) or 'no interval'}")
        lines += skill_lines(table_rmse(table, var), var, lead, NETWORKS)
    return lines


def table_rmse(table: MetricTable, variable: str) -> dict[str, float]:
    """Each model's finite RMSE of ``variable`` in ``table`` (the input of the skill
    functions of :mod:`climatune.report.skill`)."""
    col = (variable, "rmse")
    values = {m: table.value(m, col) for m in table.models}
    return {m: v for m, v in values.items() if math.isfinite(v)}


def curve_gaps(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, float]]]:
    """Per variable, fine-tuned vs scratch test RMSE at each fraction.

    ``gap`` is scratch minus fine-tuned: positive means pre-training helps. Where the
    rows hold the fine-tuned minus scratch ``rmse_diff`` with its interval, ``gap_low``,
    ``gap_high`` and ``block`` give the interval of the gap and its block length. Rows of
    several seeds add ``n_seeds`` and each network's ``<model>_std``; baseline rows (those
    without ``n_seeds``) give ``best_baseline``, the lowest baseline RMSE at that fraction.
    """
    out: dict[str, list[dict[str, float]]] = {}
    cells: dict[tuple[str, float], dict[str, float]] = {}
    for r in rows:
        if not isinstance(r, dict) or r.get("metric") not in ("rmse", "rmse_diff"):
            continue
        key = (str(r.get("variable", "")), to_float(r.get("fraction")))
        cell = cells.setdefault(key, {"fraction": key[1], "n_train": to_float(r.get("n_train"))})
        model = str(r.get("model"))
        if r["metric"] == "rmse" and model in NETWORKS:
            cell[model] = to_float(r.get("value"))
            if "std" in r:
                cell[f"{model}_std"] = to_float(r.get("std"))
                cell["n_seeds"] = to_float(r.get("n_seeds"))
        elif r["metric"] == "rmse":
            value = to_float(r.get("value"))
            if math.isfinite(value) and value < cell.get("best_baseline", math.inf):
                cell["best_baseline"] = value
        elif model == "finetuned" and r.get("reference") == "scratch":
            cell["gap_low"] = -to_float(r.get("ci_high"))
            cell["gap_high"] = -to_float(r.get("ci_low"))
            cell["block"] = to_float(r.get("block_length"))
    for (var, _), cell in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        cell["gap"] = cell.get("scratch", math.nan) - cell.get("finetuned", math.nan)
        out.setdefault(var, []).append(cell)
    return out
