"""Scores over seeds (``seeds.json``): the lines ``evaluate --seeds`` prints and the report's
section, both read from the rows :func:`climatune.evaluation.seeds.seed_rows` writes.

Pure functions over rows, like :mod:`climatune.report.tables`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from climatune.report.collect import Found, read_json, to_float
from climatune.report.markup import Cell, esc, table
from climatune.report.tables import NETWORKS, digits_to_separate, fmt

__all__ = ["seed_lines", "seeds_section"]

_SHOWN = ("rmse", "mae", "bias", "acc", "skill", "corr")


def _rows(rows: Any) -> list[dict[str, Any]]:
    keys = {"model", "variable", "metric", "value", "n_seeds"}
    return (
        [r for r in rows if isinstance(r, dict) and keys <= set(r)]
        if isinstance(rows, list)
        else []
    )


def _mean_sd(row: dict[str, Any], d: int, unit: str = "", *, signed: bool = False) -> str:
    """``0.335 ± 0.0042 K``: the mean over seeds and the sample standard deviation."""
    value, std = to_float(row.get("value")), to_float(row.get("std"))
    spread = f" ± {fmt(std, 2)}" if math.isfinite(std) else ""
    mean = f"{value:+.{d}g}" if signed and math.isfinite(value) else fmt(value, d)
    return f"{mean}{spread}{unit}"


def _significance(row: dict[str, Any]) -> str:
    low, high = to_float(row.get("ci_low")), to_float(row.get("ci_high"))
    if not math.isfinite(low + high):
        return "no interval"
    return "not significant" if low <= 0 <= high else "significant"


def _pooled_text(row: dict[str, Any], unit: str) -> str:
    pooled, low, high = (to_float(row.get(k)) for k in ("pooled", "ci_low", "ci_high"))
    if not math.isfinite(pooled + low + high):
        return "no pooled interval"
    d = digits_to_separate((pooled, low, high), 2, 4)
    return (
        f"pooled Δ {pooled:+.{d}g}{unit}, {100 * to_float(row.get('level')):g} % CI "
        f"[{low:+.{d}g}, {high:+.{d}g}], block {row.get('block_length')}, {_significance(row)}"
    )


def seed_lines(rows: Sequence[dict[str, Any]], units: dict[str, str]) -> list[str]:
    """What ``evaluate --seeds K`` prints: per variable, each network's RMSE as mean ± sd
    over the seeds, then each network's RMSE difference with every other prediction, mean
    ± sd over seeds and the pooled interval (closest competitor first)."""
    rows = _rows(rows)
    if not rows:
        return []
    k = int(to_float(rows[0]["n_seeds"]))
    lines = [f"over {k} seeds (members 0–{k - 1} of each ensemble scored one by one; mean ± sd):"]
    for var in dict.fromkeys(str(r["variable"]) for r in rows):
        unit = f" {units[var]}" if units.get(var) else ""
        mine = [r for r in rows if r["variable"] == var]
        rmse = [r for r in mine if r["metric"] == "rmse"]
        d = digits_to_separate(to_float(r["value"]) for r in rmse)
        for r in rmse:
            values = ", ".join(fmt(to_float(v), d) for v in r.get("values", []))
            lines.append(f"  {r['model']}: {var} RMSE {_mean_sd(r, d, unit)} (seeds: {values})")
        diffs = sorted(
            (r for r in mine if r["metric"] == "rmse_diff"),
            key=lambda r: (r["model"], r["reference"] not in NETWORKS, -to_float(r["value"])),
        )
        for r in diffs:
            lines.append(
                f"    {r['model']} vs {r['reference']}: Δ {_mean_sd(r, 2, unit, signed=True)}; "
                + _pooled_text(r, unit)
            )
    return lines


def seeds_section(found: Found) -> str:
    """The networks' metrics over seeds and their RMSE differences, from every
    ``seeds.json`` found; empty when there is none."""
    out = []
    for path in found.seeds:
        rows = _rows(read_json(path, found.notes))
        if not rows:
            found.notes.append(f"{found.rel(path)}: no rows over seeds")
            continue
        k = int(to_float(rows[0]["n_seeds"]))
        for var in dict.fromkeys(str(r["variable"]) for r in rows):
            mine = [r for r in rows if r["variable"] == var]
            out.append(f"<h3>{esc(var)} ({esc(found.rel(path))}, {k} seeds)</h3>")
            out.append(_metrics_table(mine))
            out.append(_diff_table(mine))
    if not out:
        return ""
    return (
        '<p class="note">The members of each ensemble differ only by seed, and here each is '
        "scored on its own: mean ± sample standard deviation over the seeds. Δ is the "
        "network's RMSE minus the other model's, per seed; the pooled Δ and its 95 % interval "
        "come from a paired circular block bootstrap of the test times, the seeds' errors "
        "pooled.</p>" + "".join(out)
    )


def _metrics_table(rows: list[dict[str, Any]]) -> str:
    metrics = [m for m in _SHOWN if any(r["metric"] == m for r in rows)]
    models = list(dict.fromkeys(str(r["model"]) for r in rows if r["metric"] in metrics))
    cells = {(str(r["model"]), str(r["metric"])): r for r in rows}
    body: list[list[Cell]] = []
    for m in models:
        row: list[Cell] = [esc(m)]
        row += [esc(_mean_sd(cells[(m, k)], 3)) if (m, k) in cells else "–" for k in metrics]
        body.append(row)
    return table(["network", *metrics], body)


def _diff_table(rows: list[dict[str, Any]]) -> str:
    diffs = [r for r in rows if r["metric"] == "rmse_diff"]
    body: list[list[Cell]] = []
    for r in sorted(diffs, key=lambda r: (r["model"], -to_float(r["value"]))):
        low, high = to_float(r.get("ci_low")), to_float(r.get("ci_high"))
        sure = _significance(r)
        body.append(
            [
                esc(f"{r['model']} vs {r['reference']}"),
                esc(_mean_sd(r, 2, signed=True)),
                fmt(to_float(r.get("pooled")), 3),
                esc(f"[{fmt(low, 3)}, {fmt(high, 3)}]") if math.isfinite(low + high) else "–",
                esc(str(r.get("block_length"))),
                (sure, "bad") if sure == "not significant" else sure,
            ]
        )
    if not body:
        return ""
    return table(
        ["comparison", "Δ RMSE per seed", "pooled Δ", "95 % interval", "block", "significant"],
        body,
    )
