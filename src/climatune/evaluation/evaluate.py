"""Honest evaluation: the model and every applicable baseline, same data, same metrics.

Networks and baselines produce predictions shaped like ``view.truth(split)`` and go
through one scoring path (:func:`climatune.evaluation.metrics.score`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from climatune.config import config_inputs, load_config, model_config
from climatune.data.view import TaskView, build_view
from climatune.errors import ClimatuneError
from climatune.evaluation.baselines import BASELINES, baselines_for, make_baseline
from climatune.evaluation.climatology import climatology_at, view_climatology
from climatune.evaluation.maps import plot_maps
from climatune.evaluation.metrics import score
from climatune.inference import LoadedModel, load_model, model_paths, model_view, predict_view
from climatune.utils.atomic import atomic_path, prepare_output_dir, releases_outputs

__all__ = ["evaluate_view", "evaluate_command", "write_metrics", "parse_baselines", "model_label"]

ROW_KEYS = ("model", "task", "variable", "metric", "value", "split")


def model_label(model: LoadedModel) -> str:
    """How the model was trained: ``finetuned``, ``scratch`` or ``pretrained``.

    A network trained without pre-training as the baseline of a fine-tune records
    ``origin: scratch``; artifacts written before that key existed read as ``pretrained``.
    """
    if model.meta.data.get("parent"):
        return "finetuned"
    return "scratch" if model.meta.data.get("origin") == "scratch" else "pretrained"


def _check_scratch(scratch: LoadedModel, model: LoadedModel, path: str | Path) -> None:
    """Refuse a ``--scratch`` model that is not a network trained from scratch on the same
    task and grid as the evaluated one (a fine-tune, the model's own parent, another task)."""
    here = scratch.model_dir.resolve()
    if here == model.model_dir.resolve():
        raise ClimatuneError(f"--scratch {path} is the evaluated model itself")
    if scratch.meta.data.get("parent"):
        raise ClimatuneError(f"--scratch {path} is a fine-tuned model, not trained from scratch")
    if str(here) == str(Path(model.meta.data.get("parent") or "").resolve()):
        raise ClimatuneError(
            f"--scratch {path} is the pre-trained parent of the evaluated model; give a network "
            "trained from scratch on the fine-tuning task"
        )
    mine = (model.meta.data["task"], model.meta.outputs, model.meta.data["grid"])
    theirs = (scratch.meta.data["task"], scratch.meta.outputs, scratch.meta.data["grid"])
    if mine[:2] != theirs[:2]:
        raise ClimatuneError(
            f"--scratch {path} does another task (task, outputs: {theirs[:2]}) than the "
            f"evaluated model ({mine[:2]}); give a network trained from scratch on the same task"
        )
    if mine[2] != theirs[2]:
        raise ClimatuneError(
            f"--scratch {path} was trained on another grid or region than the evaluated model; "
            "give a network trained from scratch on the same data"
        )


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
) -> tuple[list[dict[str, Any]], dict[str, xr.Dataset]]:
    """Score each network in ``models`` and each named baseline on ``split``.

    Returns the metric rows and the predictions by name.
    """
    truth = view.truth(split).load()
    clim = climatology_at(view_climatology(view), view.target_times(split)).load()
    weights = None if view.is_scalar else view.weights()
    preds: dict[str, xr.Dataset] = {}
    for name, model in models.items():
        preds[name] = predict_view(model, view, split)
    for name in baselines:
        if name == "scratch":
            continue
        preds[name] = make_baseline(name).fit(view).predict(view, split)
    truth = _common_cells(truth, preds)
    rows: list[dict[str, Any]] = []
    for name, pred in preds.items():
        rows += score(pred, truth, clim, weights, model=name, task=view.kind, split=split)
    return rows, preds


def _common_cells(truth: xr.Dataset, preds: dict[str, xr.Dataset]) -> xr.Dataset:
    """Truth masked to the cells where every model and baseline predicts, so all are scored
    on the same cells (the region itself is the metrics' weights)."""
    valid = truth.notnull()
    for pred in preds.values():
        valid = valid & pred.notnull()
    return truth.where(valid)


def write_metrics(rows: list[dict[str, Any]], out: Path) -> None:
    """``metrics.json`` and ``metrics.csv``: lists of ``{model, task, variable, metric, value, split}``."""
    clean = [{**r, "value": r["value"] if math.isfinite(r["value"]) else None} for r in rows]
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(clean, indent=2))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=ROW_KEYS)
    writer.writeheader()
    writer.writerows({k: r[k] for k in ROW_KEYS} for r in rows)
    with atomic_path(out / "metrics.csv") as tmp:
        tmp.write_text(buf.getvalue())


@releases_outputs
def evaluate_command(
    model_path: str | Path,
    *,
    config: str | None,
    overrides: list[str] | None,
    baselines: str,
    out: str | Path,
    scratch: str | Path | None = None,
    device: str = "cpu",
    overwrite: bool = False,
) -> Path:
    """``climatune evaluate``: metrics of a model and its baselines on the test years, plus maps.

    The models predict on ``device``; a scratch network for ``--baselines`` trains as the
    config's ``trainer`` says. ``overwrite`` replaces an earlier evaluation at ``out``.
    """
    model = load_model(model_path, device)
    if config:
        cfg = load_config(config, overrides)
    else:
        cfg = model_config(model.meta, overrides)
    inputs = [*model_paths(model_path), *config_inputs(cfg), *([config] if config else [])]
    claim = {
        "command": "evaluate",
        "inputs": inputs + (model_paths(scratch) if scratch is not None else []),
        "overwrite": overwrite,
    }
    out = prepare_output_dir(out, create=False, **claim)
    view = build_view(cfg.data, cfg.task)
    if "test" not in view.anchors:
        raise ClimatuneError("the config's split has no test block; add data.split.test")
    model_view(model, view)  # the same task, inputs and units: checked before any output
    label = model_label(model)
    names = parse_baselines(baselines, view.kind, lead=view.lead, scratch=label == "finetuned")
    models = {label: model}
    if scratch is not None:
        if label == "scratch":
            raise ClimatuneError(f"{model_path} is itself a scratch network; drop --scratch")
        models["scratch"] = load_model(scratch, device)
        _check_scratch(models["scratch"], model, scratch)
    out = prepare_output_dir(out, **claim)  # created only once the inputs are known to be good
    if "scratch" in names and scratch is None:
        from climatune.training.run import train_scratch

        print(
            f"climatune: training the same network from scratch on this task for the 'scratch' baseline "
            f"({cfg.trainer.max_epochs} epochs at most, into {out / 'scratch'}); "
            "pass --scratch RUN to reuse one",
            file=sys.stderr,
        )
        models["scratch"] = load_model(train_scratch(cfg, view, out / "scratch"), device)
    rows, preds = evaluate_view(view, models, names)
    write_metrics(rows, out)
    truth = view.truth("test")
    for label in models:
        plot_maps(preds[label], truth, out, label=label, weights=view.weights())
    return out
