"""Skill by lead time: fine-tuned, scratch and the reference forecasts at each lead.

``climatune leads`` does for the lead time what ``climatune curve`` does for the amount of
data: for each lead it fine-tunes the pre-trained model and trains the same network from
scratch (both through :func:`~climatune.training.workflow.run_training`), then scores both
with persistence, damped persistence and the climatology on the held-out years, through
the one evaluation path (:func:`~climatune.evaluation.evaluate.evaluate_view`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from climatune.config import Config, config_inputs
from climatune.data.climatology import step_unit
from climatune.data.sources import require_one_source
from climatune.data.view import TaskView, build_view
from climatune.errors import ClimatuneError
from climatune.evaluation.baselines import baselines_for
from climatune.evaluation.bootstrap import INTERVAL_KEYS
from climatune.evaluation.evaluate import evaluate_view
from climatune.evaluation.maps import save_figure
from climatune.evaluation.metrics import correlation
from climatune.inference import load_model, model_paths
from climatune.utils.atomic import atomic_path, prepare_output_dir, releases_outputs
from climatune.workflows.finetuning import finetune
from climatune.workflows.pretraining import train_scratch

__all__ = [
    "LEAD_BASELINES",
    "LEAD_KEYS",
    "parse_leads",
    "lead_rows",
    "lead_summary",
    "leads_command",
    "plot_leads",
    "MAX_LEADS",
]

LEAD_BASELINES = ("persistence", "damped_persistence", "climatology")
LEAD_KEYS = ("lead", "n_train", "model", "variable", "metric", "value")
MAX_LEADS = 48  # leads in one command: each trains two networks
_SCORE = ("rmse", "corr", "acc", "skill")  # metric rows kept from evaluate_view


def parse_leads(text: str | Sequence[int]) -> list[int]:
    """``"1,3,6"`` → sorted distinct leads, each a whole number of time steps >= 1.

    Examples
    --------
    >>> parse_leads("6, 1,3,3")
    [1, 3, 6]
    """
    items = [t.strip() for t in text.split(",")] if isinstance(text, str) else list(text)
    if not items or items == [""]:
        raise ClimatuneError("--leads is empty; give lead times in steps, e.g. --leads 1,3,6,9,12")
    values = []
    for item in items:
        try:
            value = int(item) if isinstance(item, str) else item
            whole = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        except ValueError:
            whole = False
        if not whole:
            raise ClimatuneError(
                f"--leads {text!r}: {item!r} is not a whole number of time steps; "
                "give integers >= 1, e.g. --leads 1,3,6,9,12"
            )
        if value < 1:
            raise ClimatuneError(
                f"--leads {text!r}: lead {value} is not a forecast; give integers >= 1, "
                "e.g. --leads 1,3,6,9,12"
            )
        values.append(int(value))
    leads = sorted(set(values))
    if len(leads) > MAX_LEADS:
        raise ClimatuneError(
            f"--leads gives {len(leads)} leads, over the limit of {MAX_LEADS} (each trains two "
            "networks); choose fewer"
        )
    return leads


def lead_rows(
    view: TaskView, metrics: list[dict[str, Any]], preds: dict[str, Any], lead: int
) -> list[dict[str, Any]]:
    """The rows of one lead from :func:`evaluate_view`'s output.

    Per model and variable: ``rmse``, ``corr`` (index) or ``acc`` (fields), ``skill``
    (1 − MSE / MSE of the climatology), ``skill_damped`` (1 − MSE / MSE of damped
    persistence) and, for an index, ``corr_anom``: the correlation of the anomalies from
    the training-period climatology (the ENSO forecaster's correlation; the seasonal cycle
    does not count as skill). Then each network's ``rmse_diff`` rows with their interval.
    """
    n_train = int(view.anchors["train"].size)
    head = {"lead": lead, "n_train": n_train}
    rows: list[dict[str, Any]] = []
    mse = {(r["model"], r["variable"]): r["value"] ** 2 for r in metrics if r["metric"] == "rmse"}
    for r in metrics:
        if r["metric"] in _SCORE:
            rows.append(head | {k: r[k] for k in LEAD_KEYS[2:]})
    for (model, var), value in mse.items():
        for metric, ref in (("skill", "climatology"), ("skill_damped", "damped_persistence")):
            if (ref, var) not in mse or (metric == "skill" and not view.is_scalar):
                continue  # fields have their skill row already
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = float(np.float64(value) / np.float64(mse[(ref, var)]))
            rows.append(
                head | {"model": model, "variable": var, "metric": metric, "value": 1 - ratio}
            )
    clim = preds.get("climatology")
    if view.is_scalar and clim is not None:
        truth = view.truth("test")
        for model, pred in preds.items():
            for var in truth.data_vars:
                if model == "climatology":
                    continue  # no anomaly at all
                value = correlation(pred[var] - clim[var], truth[var] - clim[var])
                rows.append(
                    head | {"model": model, "variable": var, "metric": "corr_anom", "value": value}
                )
    for r in metrics:
        if r["metric"] == "rmse_diff":
            rows.append(head | {k: r[k] for k in (*LEAD_KEYS[2:], *INTERVAL_KEYS)})
    return rows


@releases_outputs
def leads_command(
    cfg: Config,
    source: str | Path,
    leads: str | Sequence[int],
    out: str | Path,
    *,
    done: dict[int, tuple[Path, Path]] | None = None,
    overwrite: bool = False,
) -> Path:
    """``climatune leads``: for each lead, fine-tune and train from scratch, then score both
    with persistence, damped persistence and the climatology on the test years.

    Writes ``leads.json`` and ``leads.csv`` (rows of :data:`LEAD_KEYS`, see
    :func:`lead_rows`; ``rmse_diff`` rows add
    :data:`~climatune.evaluation.bootstrap.INTERVAL_KEYS`), ``leads.png`` (skill against
    lead, one line per model) and one ``lead-N/{finetuned,scratch}`` pair of runs per lead.

    ``done`` maps a lead to already trained ``(finetuned, scratch)`` runs to reuse;
    ``overwrite`` replaces an earlier ``leads`` output at ``out``.
    """
    leads = parse_leads(leads)
    if cfg.task.kind not in ("forecast", "index"):
        raise ClimatuneError(
            f"climatune leads needs a forecast or index task; the config's task.kind is "
            f"{cfg.task.kind!r}"
        )
    if cfg.data.split is None or cfg.data.split.test is None:
        raise ClimatuneError("climatune leads scores held-out years; add data.split.test")
    require_one_source(cfg.data, "leads")
    claim: dict[str, Any] = {
        "command": "leads",
        "inputs": [*model_paths(source), *config_inputs(cfg)],
        "overwrite": overwrite,
    }
    out = prepare_output_dir(out, create=False, **claim)
    load_model(source)  # fail early on a bad artifact
    views = {}
    for lead in leads:  # every lead's split is checked before anything trains
        sub = cfg.model_copy(deep=True)
        sub.task.lead = lead
        views[lead] = (sub, build_view(sub.data, sub.task))
    prepare_output_dir(out, **claim)  # created only once the data is known to be good
    rows: list[dict[str, Any]] = []
    for lead, (sub, view) in views.items():
        run = out / f"lead-{lead}"
        if done and lead in done:
            tuned, scratch = done[lead]
        else:
            tuned = finetune(sub, source, out=run / "finetuned", quiet=True, view=view)
            scratch = train_scratch(sub, view, run / "scratch")
        names = [b for b in LEAD_BASELINES if b in baselines_for(view.kind, lead)]
        models = {"finetuned": load_model(tuned), "scratch": load_model(scratch)}
        metrics, preds = evaluate_view(view, models, names)
        rows += lead_rows(view, metrics, preds, lead)
    write_leads(rows, out)
    plot_leads(rows, out / "leads.png", unit=step_unit(view.fields.time))
    return out


def lead_summary(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One line per lead and variable: the fine-tuned network against damped persistence
    (the reference forecast) with the interval of the RMSE difference, and its skill
    against the climatology, e.g. ``lead 6 sst: finetuned RMSE 0.471, damped persistence
    0.559, Δ -0.089, 95 % CI [-0.17, -0.0091]; skill vs climatology +0.63``."""
    value = {
        (r["lead"], r["model"], r["variable"], r["metric"]): _num(r["value"])
        for r in rows
        if "reference" not in r
    }
    lines = []
    for r in rows:
        if not (r["metric"] == "rmse_diff" and r["model"] == "finetuned"):
            continue
        if r["reference"] != "damped_persistence":
            continue
        key = (r["lead"], "finetuned", r["variable"])
        ref = value.get((r["lead"], "damped_persistence", r["variable"], "rmse"), math.nan)
        low, high = _num(r.get("ci_low")), _num(r.get("ci_high"))
        verdict = "" if low > 0 or high < 0 else ", not significant"
        lines.append(
            f"lead {r['lead']} {r['variable']}: finetuned RMSE {value.get((*key, 'rmse'), math.nan):.3g}, "
            f"damped persistence {ref:.3g}, Δ {_num(r['value']):+.2g}, 95 % CI [{low:+.2g}, {high:+.2g}]"
            f"{verdict}; skill vs climatology {value.get((*key, 'skill'), math.nan):+.2f}"
        )
    return lines


def _num(value: Any) -> float:
    """A number read back from ``leads.json``: null (a non-finite value) as NaN."""
    return math.nan if value is None else float(value)


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_leads(rows: list[dict[str, Any]], out: Path) -> None:
    """``leads.json`` and ``leads.csv``; non-finite numbers are written as null (empty)."""
    clean = [{k: _clean(v) for k, v in r.items()} for r in rows]
    with atomic_path(out / "leads.json") as tmp:
        tmp.write_text(json.dumps(clean, indent=2))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LEAD_KEYS + INTERVAL_KEYS, restval="")
    writer.writeheader()
    writer.writerows(clean)
    with atomic_path(out / "leads.csv") as tmp:
        tmp.write_text(buf.getvalue())


def skill_metric(rows: Sequence[dict[str, Any]]) -> str:
    """The correlation the figure shows: ``corr_anom`` for an index, ``acc`` for fields."""
    have = {r["metric"] for r in rows}
    return next((m for m in ("corr_anom", "acc", "corr") if m in have), "corr")


def plot_leads(rows: Sequence[dict[str, Any]], path: Path, unit: str = "time steps") -> Path:
    """Skill against lead time in ``unit`` (``"months"``, ...), one line per model: the
    correlation and the skill against the climatology (0 is the climatology itself)."""
    corr = skill_metric(rows)
    panels = ((corr, "anomaly correlation" if corr != "corr" else "correlation"), ("skill", ""))
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    variables = sorted({r["variable"] for r in rows})
    for ax, (metric, label) in zip(axes, panels):
        picked = [r for r in rows if r["metric"] == metric and r["value"] is not None]
        for model in sorted({r["model"] for r in picked}, key=_model_order):
            for var in variables:
                pts = sorted(
                    (r["lead"], r["value"])
                    for r in picked
                    if r["model"] == model and r["variable"] == var and math.isfinite(r["value"])
                )
                if pts:
                    name = model if len(variables) == 1 else f"{model} ({var})"
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xlabel(f"lead ({unit})")
        ax.set_ylabel(label or "skill vs climatology (1 - MSE/MSE_clim)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title("Correlation by lead", fontsize=10)
    axes[1].set_title("Skill against climatology by lead", fontsize=10)
    return save_figure(fig, path)


def _model_order(name: str) -> tuple[int, str]:
    order = ("finetuned", "scratch", "damped_persistence", "persistence", "climatology")
    return (order.index(name) if name in order else len(order), name)
