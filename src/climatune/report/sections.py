"""The eight sections of the report, each built from what :func:`~climatune.report.collect.scan`
found; a section with nothing to show returns ``""`` and is left out of the page.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from climatune.report import figures, markup, skill, tables
from climatune.report.collect import (
    Found,
    RunInfo,
    read_csv,
    read_json,
    read_losses,
    read_yaml,
    to_float,
)
from climatune.report.markup import Cell
from climatune.report.markup import esc as _e
from climatune.report.seeds import seeds_section

__all__ = ["SECTIONS"]


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def _dict(obj: Any) -> dict[str, Any]:
    return obj if isinstance(obj, dict) else {}


def _list(obj: Any) -> list[Any]:
    return obj if isinstance(obj, list) else []


def _pct_or_num(values: Sequence[float]) -> bool:
    finite = [v for v in values if math.isfinite(v)]
    return bool(finite) and all(0 <= v <= 1 for v in finite)


# --------------------------------------------------------------------------- 1. summary


def _years(blocks: Any) -> str:
    if not isinstance(blocks, dict):
        return ""
    return " · ".join(
        f"{k} {b[0]}–{b[1]}"
        for k, b in blocks.items()
        if isinstance(b, (list, tuple)) and len(b) == 2
    )


def _counts(counts: Any) -> str:
    return " · ".join(f"{k} {v}" for k, v in counts.items()) if isinstance(counts, dict) else ""


def _variables(records: Any, *, long: bool = True) -> str:
    if not isinstance(records, list):
        return ""
    out = []
    for r in records:
        if isinstance(r, dict) and "name" in r:
            units = f" [{r['units']}]" if r.get("units") else ""
            std = r.get("standard_name") if long and r.get("standard_name") != r["name"] else ""
            std = f" ({std})" if std else ""
            out.append(f"{r['name']}{units}{std}")
    return ", ".join(out)


def _grid(grid: Any) -> str:
    lat, lon = _list(_get(grid, "lat")), _list(_get(grid, "lon"))
    if not (lat and lon):
        return ""
    text = f"{len(lat)} × {len(lon)} cells"
    try:
        text += f", lat {min(lat):g}…{max(lat):g}°N, lon {min(lon):g}…{max(lon):g}°E"
        if len(lat) > 1 and len(lon) > 1:
            text += f", ~{abs(lat[1] - lat[0]):.3g}° × {abs(lon[1] - lon[0]):.3g}°"
    except (TypeError, ValueError):
        pass  # non-numeric coordinates: the size alone
    return text


def _parent(value: Any, found: Found) -> str:
    if not value:
        return ""
    path = Path(str(value))
    try:
        return path.resolve().relative_to(found.root.resolve()).as_posix()
    except (ValueError, OSError):
        return str(value)


def _run_facts(run: RunInfo, found: Found) -> list[tuple[str, str]]:
    """Ordered facts about a run, from its artifact metadata, else from its config."""
    meta = run.meta or {}
    cfg = run.config or _dict(meta.get("config"))
    prov = _dict(meta.get("provenance"))
    task = _dict(meta.get("task")) or _dict(cfg.get("task"))
    kind = str(task.get("kind", ""))
    if kind in ("forecast", "index"):
        kind += f" (history {task.get('history', '?')}, lead {task.get('lead', '?')})"
    elif kind == "downscale":
        kind += f" (×{task.get('factor', '?')})"
    data = prov.get("data") or _get(cfg, "data", "path") or ""
    model = _dict(cfg.get("model"))
    backbone = (
        f"{model.get('backbone', '')} (width {model.get('width', '?')}, depth {model.get('depth', '?')})"
        if model
        else ""
    )
    time_range = prov.get("time_range")
    calendar = _get(meta, "grid", "calendar")
    return [
        ("task", kind),
        ("data", ", ".join(map(str, data)) if isinstance(data, list) else str(data)),
        (
            "inputs",
            _variables(meta.get("inputs"))
            or ", ".join(map(str, _list(_get(cfg, "data", "variables")))),
        ),
        (
            "outputs",
            _variables(meta.get("outputs"))
            or ", ".join(map(str, _list(_get(cfg, "data", "targets")))),
        ),
        ("static inputs", ", ".join(map(str, _list(meta.get("static"))))),
        ("grid", _grid(meta.get("grid"))),
        (
            "time range",
            " → ".join(str(t).removesuffix(" 00:00:00") for t in time_range)
            if isinstance(time_range, list) and len(time_range) == 2
            else "",
        ),
        ("calendar", str(calendar or "")),
        ("split (years)", _years(prov.get("blocks") or _get(cfg, "data", "split"))),
        ("samples", _counts(prov.get("n_samples"))),
        ("backbone", backbone),
        ("ensemble", _ensemble(meta, cfg)),
        ("parent", _parent(meta.get("parent"), found)),
    ]


def _members(meta: dict[str, Any], cfg: dict[str, Any]) -> int:
    """How many networks a run holds: the artifact's ``members``, else the config's."""
    n = meta.get("members", _get(cfg, "ensemble", "members"))
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1


def _ensemble(meta: dict[str, Any], cfg: dict[str, Any]) -> str:
    """``3 members (deep ensemble, seeds 0–2)`` for an ensemble; empty for one network."""
    n = _members(meta, cfg)
    if n < 2:
        return ""
    seed = cfg.get("seed", _get(meta, "config", "seed"))
    seeds = f", seeds {seed}–{seed + n - 1}" if isinstance(seed, int) else ""
    return f"{n} members (deep ensemble{seeds})"


def _primary(found: Found) -> RunInfo | None:
    """The run the summary details: the directory itself, else the fine-tuned run, else the first."""
    order = ["finetune", "finetuned"]
    ranked = sorted(
        found.runs,
        key=lambda r: (
            r.path != found.root,
            order.index(r.name) if r.name in order else len(order),
            r.meta is None,
        ),
    )
    return ranked[0] if ranked else None


def _summary(found: Found) -> str:
    if not found.runs:
        return ""
    out = []
    # an ensemble member's folder holds only its log: its run is the ensemble's
    listed = [r for r in found.runs if r.meta is not None or r.config is not None]
    if len(listed) > 1:
        keys = ("task", "data", "outputs", "grid", "split (years)", "samples", "members", "parent")
        rows = []
        for run in listed:
            facts = dict(_run_facts(run, found))
            facts["outputs"] = _variables(_get(run.meta, "outputs"), long=False) or facts["outputs"]
            facts["grid"] = facts["grid"].split(" cells")[0]
            facts["members"] = str(_members(run.meta or {}, run.config or {}))
            rows.append([_e(run.name)] + [(_e(facts[k]) or "–", "w") for k in keys])
        out.append("<h3>Runs</h3>" + markup.table(["run", *keys], rows))
    primary = _primary(found)
    assert primary is not None
    out.append(f"<h3>{_e(primary.name)}</h3>" if len(listed) > 1 else "")
    out.append(markup.facts(_run_facts(primary, found)))
    text = ""
    if primary.config is not None:
        text = (primary.path / "config.yaml").read_text(encoding="utf-8", errors="replace")
    elif isinstance(config := _get(primary.meta, "config"), dict):  # kind, history, ... in "task"
        task = {**_dict(config.get("task")), **_dict(_get(primary.meta, "task"))}
        text = yaml.safe_dump({**config, "task": task}, sort_keys=False)
    if text:
        out.append(
            f"<details><summary>resolved config of {_e(primary.name)}</summary><pre>{_e(text)}</pre></details>"
        )
    return "".join(out)


# --------------------------------------------------------------------------- 2. training


def _training(found: Found) -> str:
    histories = {r.name: read_losses(r.log, found.notes) for r in found.runs if r.log is not None}
    histories = {k: v for k, v in histories.items() if v}
    png = figures.loss_curves(histories)
    if png is None:
        return ""
    rows = []
    for name, h in histories.items():
        train, val = h.get("train") or [], h.get("val") or []
        epochs = len({e for pts in h.values() for e, _ in pts})
        best = min(val, key=lambda p: p[1]) if val else None
        rows.append(
            [
                _e(name),
                str(epochs),
                f"{tables.fmt(best[1], 4)} (epoch {best[0]})" if best else "–",
                tables.fmt(train[-1][1], 4) if train else "–",
                tables.fmt(val[-1][1], 4) if val else "–",
            ]
        )
    header = ["run", "epochs", "best val loss", "last train loss", "last val loss"]
    return markup.figure(
        png, "training and validation loss per epoch", "loss per epoch, drawn from logs/metrics.csv"
    ) + markup.table(header, rows)


# --------------------------------------------------------------------------- 3. metrics


def _units(found: Found) -> dict[str, str]:
    units: dict[str, str] = {}
    for run in found.runs:
        for rec in _list(_get(run.meta, "outputs")) + _list(_get(run.meta, "inputs")):
            if isinstance(rec, dict) and rec.get("name") and rec.get("units"):
                units.setdefault(str(rec["name"]), str(rec["units"]))
    return units


def _metric_table_html(table: tables.MetricTable, units: dict[str, str]) -> str:
    variables = list(dict.fromkeys(v for v, _ in table.columns))
    top = '<th class="l" rowspan="2">model</th>' + "".join(
        f'<th class="c" colspan="{sum(c[0] == v for c in table.columns)}">{_e(v)}'
        f"{f' [{_e(units[v])}]' if units.get(v) else ''}</th>"
        for v in variables
    )
    sub = "".join(f'<th data-var="{_e(v)}">{_e(m)}</th>' for v, m in table.columns)
    digits = {
        c: tables.digits_to_separate(table.value(m, c) for m in table.models) for c in table.columns
    }
    body = []
    for model in table.models:
        cls = ' class="net"' if model in tables.NETWORKS else ""
        cells = [f'<td class="l">{_e(model)}</td>']
        for col in table.columns:
            best = model in table.best.get(col, set())
            attrs = f' data-var="{_e(col[0])}" data-metric="{_e(col[1])}"' + (
                ' class="best"' if best else ""
            )
            cells.append(f"<td{attrs}>{tables.fmt(table.value(model, col), digits[col])}</td>")
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return (
        f'<div class="scroll"><table class="metrics"><thead><tr>{top}</tr><tr>{sub}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _intervals_html(table: tables.MetricTable, variable: str, units: str) -> str:
    """The judged network's RMSE difference with each other model, with its interval."""
    main = tables.main_model(table.models)
    pairs = [
        (ref, iv)
        for (m, ref, var), iv in table.intervals.items()
        if m == main and var == variable and ref != "pretrained"
    ]
    if not pairs:
        return ""
    unit = f" [{_e(units)}]" if units else ""
    rows: list[list[Cell]] = []
    for ref, iv in sorted(pairs, key=lambda p: to_float(p[1].get("value"))):
        low, high = to_float(iv.get("ci_low")), to_float(iv.get("ci_high"))
        sure = "yes" if not low <= 0 <= high else ("not significant", "bad")
        rows.append(
            [
                _e(ref),
                tables.fmt(to_float(iv.get("value")), 3),
                _e(_bounds(low, high)) if math.isfinite(low + high) else "–",
                _e(str(iv.get("block_length"))),
                sure if math.isfinite(low + high) else "–",
            ]
        )
    return (
        f'<p class="note">{_e(variable)}: {_e(str(main))} RMSE minus each other model\'s '
        f"(negative: {_e(str(main))} is better), paired circular block bootstrap over "
        f"{_e(str(pairs[0][1].get('n_times')))} test times, block length from the lag-1 "
        "autocorrelation of the paired errors.</p>"
        + markup.table(
            ["compared with", f"Δ RMSE{unit}", "95 % interval", "block", "significant"], rows
        )
    )


def _lead(found: Found) -> int | None:
    """The forecast lead every run of the folder shares (``task.lead``), else ``None``."""
    leads = {
        _get(run.config, "task", "lead")
        for run in found.runs
        if _get(run.config, "task", "kind") in ("forecast", "index")
    }
    lead = leads.pop() if len(leads) == 1 else None
    return lead if isinstance(lead, int) and not isinstance(lead, bool) else None


def _skill_html(table: tables.MetricTable, variable: str, lead: int | None) -> str:
    """Each network's skill against the climatology and damped persistence, with the plain
    verdict for one that does not beat the climatology."""
    scores = skill.network_skills(tables.table_rmse(table, variable), tables.NETWORKS)
    refs = [r for r in skill.REFERENCES if any(r in v for v in scores.values())]
    if not scores or not refs:
        return ""
    rows: list[list[Cell]] = []
    for net, values in scores.items():
        plain = skill.usefulness(values)
        row: list[Cell] = [_e(net), *(tables.fmt(values.get(r, math.nan), 2) for r in refs)]
        row.append((_e(plain), "bad") if plain else "beats climatology")
        rows.append(row)
    at = f" at lead {lead}" if lead is not None else ""
    return (
        f'<p class="note">{_e(variable)}: skill{_e(at)} of each network, 1 − MSE / MSE of '
        "the reference, on the cells every model is scored on.</p>"
        + markup.table(
            ["network", *(f"skill vs {r.replace('_', ' ')}" for r in refs), "useful?"], rows
        )
    )


def _metrics(found: Found) -> str:
    units = _units(found)
    lead = _lead(found)
    out = []
    for path in found.metrics:
        rows = read_json(path, found.notes)
        table = tables.metric_table(rows if isinstance(rows, list) else [])
        if table is None:
            found.notes.append(f"{found.rel(path)}: no metric rows")
            continue
        if len(found.metrics) > 1:
            out.append(f"<h3>{_e(found.rel(path))}</h3>")
        variables = list(dict.fromkeys(v for v, _ in table.columns))
        for var in variables:
            result = tables.verdict(table, var, units.get(var, ""), lead)
            if result:
                out.append(
                    f'<p class="verdict {"win" if result[1] else "loss"}">{_e(result[0])}.</p>'
                )
            out.append(_skill_html(table, var, lead))
            out.append(_intervals_html(table, var, units.get(var, "")))
        out.append(
            f'<p class="note">{_e(table.split)} split ({_e(found.rel(path))}); best value per column highlighted: '
            "lowest rmse and mae, lowest |bias|, highest acc, skill and corr.</p>"
        )
        out.append(_metric_table_html(table, units))
        bars = [
            figures.rmse_bars(
                {m: table.value(m, (v, "rmse")) for m in table.models},
                variable=v,
                units=units.get(v, ""),
                highlight=tables.main_model(table.models),
            )
            for v in variables
            if (v, "rmse") in table.columns
        ]
        pngs = [p for p in bars if p]
        if pngs:
            items = "".join(markup.figure(p, "RMSE by model") for p in pngs)
            out.append(f'<div class="gallery">{items}</div>' if len(pngs) > 1 else items)
    return "".join(out)


def _probabilistic(found: Found) -> str:
    """CRPS, spread-skill, PIT alpha and the ensemble-mean RMSE of every ensemble and
    probabilistic baseline, and the networks' rank histograms."""
    units = _units(found)
    out = []
    for path in found.metrics:
        rows = read_json(path, [])
        rows = rows if isinstance(rows, list) else []
        by_var = tables.probabilistic_table(rows)
        diffs = {
            (str(r["model"]), str(r["variable"])): r
            for r in rows
            if isinstance(r, dict) and r.get("metric") == "crps_diff"
        }
        for var, models in by_var.items():
            unit = f" [{_e(units[var])}]" if units.get(var) else ""
            body: list[list[Cell]] = []
            for model, entry in models.items():
                iv = diffs.get((model, var))
                ratio = entry.get("spread_skill", math.nan)
                how = entry.get("estimator")  # a Gaussian head's CRPS: how it was computed
                body.append(
                    [
                        _e(model) + (f" (Gaussian head; CRPS: {_e(how)})" if how else ""),
                        tables.fmt(entry.get("crps", math.nan), 3),
                        f"{ratio:.2f}" if math.isfinite(ratio) else "–",
                        tables.fmt(entry.get("pit_alpha", math.nan), 3),
                        tables.fmt(entry.get("rmse", math.nan), 3),
                        _e(str(len(entry["ranks"]) - 1)) if entry["ranks"] else "–",
                        _e(f"{tables.interval_text(iv)} vs {iv['reference']}") if iv else "–",
                    ]
                )
            out.append(f"<h3>{_e(var)} ({_e(found.rel(path))})</h3>")
            out.append(
                markup.table(
                    [
                        "model",
                        f"CRPS{unit}",
                        "spread / skill",
                        "PIT alpha",
                        f"ensemble-mean RMSE{unit}",
                        "members",
                        f"Δ CRPS{unit} against the best baseline",
                    ],
                    body,
                )
            )
            nets = {m: e["ranks"] for m, e in models.items() if tables.is_network(m)}
            png = figures.rank_histograms(nets, variable=var)
            if png:
                out.append(markup.figure(png, f"{var}: rank histograms"))
    if not out:
        return ""
    return (
        '<p class="note">Fair ensemble CRPS (lower is better), spread-skill ratio (1 for a '
        "calibrated ensemble, below 1 over-confident), alpha score of the PIT (0 when "
        "calibrated; about 1/(4 M) for M members even then), latitude-weighted inside the "
        "region, computed with the scores package. Baselines: the climatological ensemble "
        "(the training years) and each deterministic baseline dressed with its training "
        "residual spread (20 members); a network ensemble NAME_dressed is its members "
        "dressed with the spread they lack on the training years (kernel dressing).</p>"
        + "".join(out)
    )


# --------------------------------------------------------------------------- 4-5. maps, curve


def _maps(found: Found) -> str:
    return "".join(markup.figure_file(p, found) for p in found.maps)


def _curve(found: Found) -> str:
    out = []
    for folder in found.curves:
        if len(found.curves) > 1:
            out.append(f"<h3>{_e(found.rel(folder))}</h3>")
        rows = (
            read_json(folder / "curve.json", found.notes)
            if found.own(folder / "curve.json")
            else None
        )
        gaps = tables.curve_gaps(rows if isinstance(rows, list) else [])
        png_path = folder / "curve.png"
        if found.own(png_path) and found.accept_image(png_path):
            out.append(markup.figure_file(png_path, found))
        elif gaps:
            png = figures.efficiency_curve(gaps)
            out.append(
                markup.figure(
                    png, "data-efficiency curve", f"drawn from {found.rel(folder / 'curve.json')}"
                )
                if png
                else ""
            )
        for var, cells in gaps.items():
            better = sum(c["gap"] > 0 for c in cells if math.isfinite(c["gap"]))
            scored = sum(math.isfinite(c["gap"]) for c in cells)
            ci = [c for c in cells if "gap_low" in c]
            sure = sum(c["gap_low"] > 0 for c in ci)
            how = "; 95 % interval of the gap by a paired block bootstrap over test times"
            out.append(
                f"<p><b>{_e(var)}</b>: fine-tuning beats scratch at {better} of {scored} fractions"
                + (f", significantly at {sure} of {len(ci)}" if ci else "")
                + " (gap = scratch − fine-tuned RMSE; positive means pre-training helps"
                + (how if ci else "")
                + ").</p>"
            )
            seeds = max((int(c.get("n_seeds", 1)) for c in cells), default=1)
            based = [c for c in cells if "best_baseline" in c]
            if seeds > 1:
                out.append(
                    f"<p>Each network RMSE is the mean ± standard deviation over {seeds} seeds;"
                    " the interval pools the seeds' errors.</p>"
                )
            if based:
                ahead = sum(c.get("finetuned", math.inf) < c["best_baseline"] for c in based)
                out.append(
                    f"<p>Fine-tuned beats the best baseline at {ahead} of {len(based)}"
                    " fractions.</p>"
                )
            header = ["fraction", "training samples", "fine-tuned RMSE", "scratch RMSE", "gap"]
            table_rows: list[list[Cell]] = []
            for c in cells:
                row: list[Cell] = [
                    f"{c['fraction']:g}",
                    tables.fmt(c["n_train"], 6),
                    _with_spread(c, "finetuned"),
                    _with_spread(c, "scratch"),
                    (tables.fmt(c["gap"], 3), "bad" if c["gap"] < 0 else ""),
                ]
                if based:
                    row.append(tables.fmt(c.get("best_baseline", math.nan), 4))
                table_rows.append(row + (_gap_interval(c) if ci else []))
            header += ["best baseline RMSE"] if based else []
            out.append(
                markup.table(header + (["95 % interval", "block"] if ci else []), table_rows)
            )
    return "".join(out)


_LEAD_ORDER = ("finetuned", "scratch", "damped_persistence", "persistence", "climatology")


def _leads(found: Found) -> str:
    """Skill by lead (``climatune leads``): the figure, a table per variable and, per lead,
    whether the fine-tuned network beats damped persistence, with its interval."""
    out = []
    for folder in found.leads:
        if len(found.leads) > 1:
            out.append(f"<h3>{_e(found.rel(folder))}</h3>")
        png_path = folder / "leads.png"
        if found.own(png_path) and found.accept_image(png_path):
            out.append(markup.figure_file(png_path, found))
        rows = (
            read_json(folder / "leads.json", found.notes)
            if found.own(folder / "leads.json")
            else None
        )
        rows = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
        out.append(_lead_tables(rows))
    return "".join(out)


def _lead_tables(rows: list[dict[str, Any]]) -> str:
    out = []
    have = {r.get("metric") for r in rows}
    corr = next((m for m in ("corr_anom", "acc", "corr") if m in have), None)
    metrics = [m for m in (corr, "corr" if corr == "corr_anom" else None, "rmse") if m]
    metrics += [m for m in ("skill", "skill_damped") if m in have]
    titles = {
        "corr_anom": "anomaly corr.",
        "acc": "ACC",
        "corr": "corr.",
        "rmse": "RMSE",
        "skill": "skill vs clim.",
        "skill_damped": "skill vs damped pers.",
    }
    for var in sorted({str(r.get("variable")) for r in rows}):
        mine = [r for r in rows if str(r.get("variable")) == var]
        value = {
            (to_float(r.get("lead")), str(r.get("model")), str(r.get("metric"))): to_float(
                r.get("value")
            )
            for r in mine
        }
        leads = sorted({k[0] for k in value if math.isfinite(k[0])})
        models = sorted({k[1] for k in value}, key=lambda m: (_LEAD_ORDER + (m,)).index(m))
        table_rows: list[list[Cell]] = []
        for lead in leads:
            for model in models:
                nums = [value.get((lead, model, m), math.nan) for m in metrics]
                if all(not math.isfinite(v) for v in nums):
                    continue
                cells: list[Cell] = [f"{lead:g}", _e(model)]
                for m, v in zip(metrics, nums):
                    bad = m.startswith("skill") and math.isfinite(v) and v < 0
                    cells.append((tables.fmt(v, 3), "bad") if bad else tables.fmt(v, 3))
                table_rows.append(cells)
        beats, sure, scored = [], [], 0
        for lead in leads:
            diff = next(
                (
                    r
                    for r in mine
                    if to_float(r.get("lead")) == lead
                    and r.get("metric") == "rmse_diff"
                    and r.get("model") == "finetuned"
                    and r.get("reference") == "damped_persistence"
                ),
                None,
            )
            if diff is None or not math.isfinite(to_float(diff.get("value"))):
                continue
            scored += 1
            if to_float(diff["value"]) < 0:
                beats.append(f"{lead:g}")
                if to_float(diff.get("ci_high")) < 0:
                    sure.append(f"{lead:g}")
        if scored:
            out.append(
                f"<p><b>{_e(var)}</b>: the fine-tuned network beats damped persistence at "
                f"{len(beats)} of {scored} leads ({', '.join(beats) or 'none'}), significantly "
                f"at {len(sure)} ({', '.join(sure) or 'none'}; 95 % interval of the RMSE "
                "difference by a paired block bootstrap over test times).</p>"
            )
        if table_rows:
            out.append(markup.table(["lead", "model", *(titles[m] for m in metrics)], table_rows))
    return "".join(out)


def _with_spread(cell: dict[str, float], model: str) -> str:
    """``0.3260 ± 0.0041`` with several seeds, else the RMSE alone."""
    value = tables.fmt(cell.get(model, math.nan), 4)
    std = cell.get(f"{model}_std")
    return value if std is None else f"{value} ± {tables.fmt(std, 2)}"


def _bounds(low: float, high: float) -> str:
    """``[-0.031, -0.0052]``: two significant digits, more where they would print alike."""
    d = tables.digits_to_separate((low, high), 2, 4)
    return f"[{low:+.{d}g}, {high:+.{d}g}]"


def _gap_interval(cell: dict[str, float]) -> list[Cell]:
    """The interval of a curve gap and its block length; "not significant" when it covers 0."""
    if "gap_low" not in cell or not math.isfinite(cell["gap_low"] + cell["gap_high"]):
        return ["–", "–"]
    text = _bounds(cell["gap_low"], cell["gap_high"])
    if cell["gap_low"] <= 0 <= cell["gap_high"]:
        return [(f"{text} not significant", "bad"), f"{cell['block']:g}"]
    return [text, f"{cell['block']:g}"]


# --------------------------------------------------------------------------- 6. attribution


def _matrix(data: dict[str, Any]) -> str:
    """``{row: {column: share}}`` as a table; the largest share of each row highlighted."""
    columns = list(dict.fromkeys(c for inner in data.values() for c in inner))
    values = [to_float(v) for inner in data.values() for v in inner.values()]
    pct = _pct_or_num(values)
    rows = []
    for name, inner in data.items():
        nums = {c: to_float(inner.get(c)) for c in columns}
        top = max((v for v in nums.values() if math.isfinite(v)), default=math.nan)
        cells: list[Cell] = [_e(str(name))]
        for c in columns:
            v = nums[c]
            text = "–" if not math.isfinite(v) else (f"{100 * v:.1f}%" if pct else tables.fmt(v, 3))
            cells.append((text, "best" if v == top else ""))
        rows.append(cells)
    return markup.table(["", *(_e(str(c)) for c in columns)], rows)


def _is_matrix(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(
            isinstance(v, dict)
            and v
            and all(isinstance(x, (int, float)) or x is None for x in v.values())
            for v in obj.values()
        )
    )


def _target_shares(data: dict[str, Any]) -> str:
    """``explain``'s ``{"targets": {output: {"components": {...}, "variables": {...}}}}``:
    an output × component matrix, then an output × input-variable one, with the method
    and measure above them; empty when ``data`` has another shape."""
    targets = data.get("targets")
    if not isinstance(targets, dict) or not targets:
        return ""
    parts = []
    for key, title in (("components", "climate component"), ("variables", "input variable")):
        matrix = {str(t): v.get(key) for t, v in targets.items() if isinstance(v, dict)}
        matrix = {t: m for t, m in matrix.items() if isinstance(m, dict) and m}
        if matrix and _is_matrix(matrix):
            parts.append(f"<h3>Output × {_e(title)}</h3>{_matrix(matrix)}")
    if not parts:
        return ""
    facts = [(k, str(data[k])) for k in ("method", "measure") if isinstance(data.get(k), str)]
    of = data.get("components_of")
    if isinstance(of, dict) and of:
        facts.append(("components", ", ".join(f"{k}: {v}" for k, v in of.items())))
    samples = {str(v.get("samples")) for v in targets.values() if isinstance(v, dict)}
    if len(samples) == 1 and samples != {"None"}:
        facts.append(("samples", samples.pop()))
    return markup.facts(facts) + "".join(parts)


def _interactions(data: Any) -> str:
    """Render the interaction matrix in whichever plain JSON shape it comes."""
    if _is_matrix(data):
        return _matrix(data)
    if isinstance(data, dict) and (shares := _target_shares(data)):
        return shares
    if isinstance(data, dict):
        if {"rows", "columns", "values"} <= set(data) and isinstance(data["values"], list):
            try:
                return _matrix(
                    {
                        r: dict(zip(data["columns"], vals))
                        for r, vals in zip(data["rows"], data["values"])
                    }
                )
            except TypeError:
                pass
        parts = [f"<h3>{_e(str(k))}</h3>{_matrix(v)}" for k, v in data.items() if _is_matrix(v)]
        scalars = [
            (str(k), str(v)) for k, v in data.items() if isinstance(v, (str, int, float, bool))
        ]
        if parts:
            return markup.facts(scalars) + "".join(parts)
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        keys = list(dict.fromkeys(k for r in data for k in r))
        return markup.table(
            [_e(str(k)) for k in keys], [[_e(str(r.get(k, ""))) for k in keys] for r in data]
        )
    return f"<pre>{_e(json.dumps(data, indent=2)[:20000])}</pre>"


def _explain(found: Found) -> str:
    out = []
    for folder in found.explains:
        if len(found.explains) > 1:
            out.append(f"<h3>{_e(found.rel(folder))}</h3>")
        nc = folder / "attributions.nc"
        if found.own(nc):
            out.append(
                f'<p class="note">Attribution maps: {_e(found.rel(nc))} '
                f"({nc.stat().st_size / 2**20:.1f} MiB; open it with xarray).</p>"
            )
        if found.own(folder / "interactions.json"):
            data = read_json(folder / "interactions.json", found.notes)
            if data is not None:
                out.append(
                    "<p>Interaction matrix: share of |attribution| of each output (row) that each "
                    "input variable or climate component (column) carries; the largest share is highlighted.</p>"
                )
                out.append(_interactions(data))
        out.append(markup.gallery(found.images(folder), found))
    return "".join(out)


# --------------------------------------------------------------------------- 7. tuning


def _trials(rows: list[dict[str, str]], maximize: bool) -> str:
    if not rows:
        return ""
    done = [r for r in rows if math.isfinite(to_float(r.get("value")))]
    done.sort(key=lambda r: to_float(r["value"]), reverse=maximize)
    params = [k for k in rows[0] if k and k.startswith("params_")]
    states = sum(str(r.get("state", "COMPLETE")).upper() == "COMPLETE" for r in rows)
    header = ["trial", "value", *(_e(p.removeprefix("params_")) for p in params)]
    table = [
        [
            _e(r.get("number", "")),
            tables.fmt(to_float(r["value"]), 5),
            *(_e(r.get(p, "")) for p in params),
        ]
        for r in done[:10]
    ]
    order = "highest" if maximize else "lowest"
    note = f"<p>{len(rows)} trials, {states} complete; the {len(table)} best ({order} objective first):</p>"
    return note + markup.table(header, table) if table else note


def _tuning(found: Found) -> str:
    out = []
    for folder in found.tunes:
        if len(found.tunes) > 1:
            out.append(f"<h3>{_e(found.rel(folder))}</h3>")
        best = (
            read_yaml(folder / "best.yaml", found.notes)
            if found.own(folder / "best.yaml")
            else None
        )
        if isinstance(best, dict):
            params = best.get("params") or best.get("best_params")
            if isinstance(params, dict):
                out.append(
                    "<p><b>Best parameters</b></p>"
                    + markup.facts((str(k), str(v)) for k, v in params.items())
                )
            text = (folder / "best.yaml").read_text(encoding="utf-8", errors="replace")
            short = not isinstance(params, dict) and text.count("\n") < 40
            out.append(
                f"<details{' open' if short else ''}><summary>best.yaml</summary>"
                f"<pre>{_e(text)}</pre></details>"
            )
        if found.own(folder / "trials.csv"):
            maximize = str(_get(best, "direction") or "").lower() == "maximize"
            out.append(_trials(read_csv(folder / "trials.csv", found.notes), maximize))
        out.append(markup.gallery(found.images(folder), found))
    return "".join(out)


SECTIONS: tuple[tuple[str, str, Callable[[Found], str]], ...] = (
    ("summary", "Summary", _summary),
    ("training", "Training curves", _training),
    ("metrics", "Metrics against the baselines", _metrics),
    ("probabilistic", "Probabilistic scores", _probabilistic),
    ("seeds", "Over seeds", seeds_section),
    ("maps", "Maps", _maps),
    ("efficiency", "Data efficiency", _curve),
    ("leads", "Skill by lead time", _leads),
    ("attribution", "Attribution", _explain),
    ("tuning", "Tuning", _tuning),
)
