"""Honest evaluation: the model and every applicable baseline, same data, same metrics.

Networks and baselines produce predictions shaped like ``view.truth(split)`` and go
through one scoring path (:func:`climatune.evaluation.metrics.score`). Each network is
compared with every other prediction by the paired block-bootstrap interval of its RMSE
difference (:func:`climatune.evaluation.bootstrap.comparison_rows`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from climatune.data.view import TaskView
from climatune.errors import ClimatuneError
from climatune.evaluation.baselines import BASELINES, Baseline, baselines_for, make_baseline
from climatune.evaluation.bootstrap import INTERVAL_KEYS, comparison_rows
from climatune.evaluation.climatology import climatology_at, view_climatology
from climatune.evaluation.metrics import score
from climatune.evaluation.probabilistic import probabilistic_rows
from climatune.inference import LoadedModel, predict_distribution, predict_view
from climatune.utils.atomic import atomic_path

__all__ = ["evaluate_view", "write_metrics", "parse_baselines", "model_label"]

ROW_KEYS = ("model", "task", "variable", "metric", "value", "split")


def model_label(model: LoadedModel) -> str:
    """How the model was trained: ``finetuned``, ``scratch`` or ``pretrained``.

    A network trained without pre-training as the baseline of a fine-tune records
    ``origin: scratch``; artifacts written before that key existed read as ``pretrained``.
    """
    if model.meta.data.get("parent"):
        return "finetuned"
    return "scratch" if model.meta.data.get("origin") == "scratch" else "pretrained"


def parse_baselines(
    text: str | Sequence[str] | None, kind: str, *, lead: int | None = None, scratch: bool = False
) -> list[str]:
    """``all`` → every baseline that applies to ``kind`` at ``lead`` (and ``scratch`` when
    asked); ``none`` → none; else a checked list."""
    applicable = baselines_for(kind, lead) + (["scratch"] if scratch else [])
    if text is None or text == "none" or text == []:
        return []
    if text == "all":
        return list(applicable)
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    refused = [n for n in names if n in baselines_for(kind) and n not in applicable]
    if refused:  # applies to the kind, not at this lead: say why
        raise ClimatuneError(BASELINES[refused[0]].refusal(kind, lead))
    bad = [n for n in names if n not in applicable and n != "scratch"]
    if bad:
        raise ClimatuneError(
            f"baseline(s) {bad} do not apply to a {kind} task; choose from {sorted({*applicable, 'scratch'})}"
        )
    return names


def evaluate_view(
    view: TaskView,
    models: dict[str, LoadedModel],
    baselines: Sequence[str],
    *,
    split: str = "test",
    seed: int = 0,
) -> tuple[list[dict[str, Any]], dict[str, xr.Dataset]]:
    """Score each network in ``models`` and each named baseline on ``split``.

    Returns the metric rows, then one ``rmse_diff`` row per network, variable and other
    prediction with its 95 % interval (bootstrap draws seeded by ``seed``), and the
    predictions by name. An ensemble is scored by its members' mean; when there is one,
    the probabilistic rows of every ensemble and of the probabilistic baselines follow
    (:func:`~climatune.evaluation.probabilistic.probabilistic_rows`).
    """
    truth = view.truth(split).load()
    clim = climatology_at(view_climatology(view), view.target_times(split)).load()
    weights = None if view.is_scalar else view.weights()
    preds: dict[str, xr.Dataset] = {}
    ensembles: dict[str, xr.Dataset] = {}
    gaussians: dict[str, tuple[xr.Dataset, xr.Dataset]] = {}
    trained: dict[str, xr.Dataset] = {}
    for name, model in models.items():
        if model.distribution == "gaussian":
            gaussians[name] = predict_distribution(model, view, split)
            preds[name] = gaussians[name][0].mean("member", keep_attrs=True)
        elif model.members > 1:
            ensembles[name] = predict_view(model, view, split, members=True)
            preds[name] = ensembles[name].mean("member", keep_attrs=True)
            if "train" in view.anchors:  # its spread on the training years, to dress it
                trained[name] = predict_view(model, view, "train", members=True)
        else:
            preds[name] = predict_view(model, view, split)
    fitted: dict[str, Baseline] = {}
    for name in baselines:
        if name == "scratch":
            continue
        fitted[name] = make_baseline(name).fit(view)
        preds[name] = fitted[name].predict(view, split)
    truth = _common_cells(truth, preds)
    rows: list[dict[str, Any]] = []
    for name, pred in preds.items():
        rows += score(pred, truth, clim, weights, model=name, task=view.kind, split=split)
    rows += comparison_rows(
        preds, truth, weights, list(models), task=view.kind, split=split, seed=seed
    )
    if ensembles or gaussians:
        rows += probabilistic_rows(
            view,
            ensembles,
            fitted,
            preds,
            truth,
            weights,
            split=split,
            gaussians=gaussians,
            trained=trained,
        )
    return rows, preds


def _common_cells(truth: xr.Dataset, preds: dict[str, xr.Dataset]) -> xr.Dataset:
    """Truth masked to the cells where every model and baseline predicts, so all are scored
    on the same cells (the region itself is the metrics' weights)."""
    valid = truth.notnull()
    for pred in preds.values():
        valid = valid & pred.notnull()
    return truth.where(valid)


def write_metrics(rows: list[dict[str, Any]], out: Path) -> None:
    """``metrics.json`` and ``metrics.csv``: lists of ``{model, task, variable, metric, value, split}``.

    Comparison rows add :data:`~climatune.evaluation.bootstrap.INTERVAL_KEYS`, the last
    columns of the CSV (empty on metric rows). Non-finite numbers are written as null.
    """
    clean = [
        {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in r.items()}
        for r in rows
    ]
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(clean, indent=2))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=ROW_KEYS + INTERVAL_KEYS, restval="")
    writer.writeheader()
    writer.writerows(
        {k: r[k] for k in ROW_KEYS} | {k: r[k] for k in INTERVAL_KEYS if k in r} for r in rows
    )
    with atomic_path(out / "metrics.csv") as tmp:
        tmp.write_text(buf.getvalue())
