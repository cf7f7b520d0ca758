"""Data efficiency: fine-tuned against scratch on growing fractions of the training years."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from climatune.config import Config, config_inputs
from climatune.data.sources import require_one_source
from climatune.data.view import TaskView, build_view
from climatune.errors import ClimatuneError
from climatune.evaluation.bootstrap import INTERVAL_KEYS, paired_interval
from climatune.evaluation.evaluate import evaluate_view, parse_baselines
from climatune.evaluation.maps import save_figure
from climatune.evaluation.metrics import squared_errors
from climatune.inference import load_model, model_paths
from climatune.utils.atomic import atomic_path, prepare_output_dir, releases_outputs
from climatune.workflows.finetuning import finetune
from climatune.workflows.pretraining import train_scratch

__all__ = ["MAX_SEEDS", "parse_fractions", "curve_command", "plot_curve"]

#: The most seeds a curve trains per fraction (each seed is two full trainings).
MAX_SEEDS = 32
_METRICS = ("rmse", "skill", "acc", "corr")
_NETWORKS = ("finetuned", "scratch")


def parse_fractions(text: str | Sequence[float]) -> list[float]:
    """``"0.1,0.25,1"`` → sorted fractions, each in (0, 1]."""
    try:
        values = [float(v) for v in (text.split(",") if isinstance(text, str) else text)]
    except ValueError:
        raise ClimatuneError(
            f"--fractions {text!r} must be comma-separated numbers, e.g. 0.1,0.25,0.5,1.0"
        ) from None
    bad = [v for v in values if not 0 < v <= 1]
    if not values or bad:
        raise ClimatuneError(f"--fractions must lie in (0, 1]; got {bad or text!r}")
    return sorted(set(values))


def _check_seeds(seeds: int, first: int) -> int:
    """``seeds`` if it is a count from 1 to :data:`MAX_SEEDS` and the last seed is valid."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
        raise ClimatuneError(f"--seeds must be an integer from 1 to {MAX_SEEDS}; got {seeds!r}")
    if first + seeds > 2**32:
        raise ClimatuneError(f"--seeds {seeds} from seed {first} runs past the last seed, 2**32-1")
    return seeds


@releases_outputs
def curve_command(
    cfg: Config,
    source: str | Path,
    fractions: str | Sequence[float],
    out: str | Path,
    *,
    seeds: int = 1,
    baselines: str | Sequence[str] | None = None,
    done: dict[float, tuple[Path, Path]] | None = None,
    overwrite: bool = False,
) -> Path:
    """``climatune curve``: for each fraction, fine-tune and train from scratch, then score both.

    ``curve.json`` holds the rmse, skill, acc and corr rows of both networks and, per
    fraction, the fine-tuned minus scratch RMSE difference with its 95 % interval
    (``metric: rmse_diff``, :data:`~climatune.evaluation.bootstrap.INTERVAL_KEYS`).

    With ``seeds`` K > 1 both networks are trained K times per fraction (seeds
    ``cfg.seed``, ``cfg.seed + 1``, ...; runs under ``fraction-F/seed-S/``); each row's
    ``value`` is then the mean over seeds, ``std`` their sample standard deviation and
    ``values`` the seeds' own, and the interval of the difference is a paired bootstrap of
    the errors pooled over seeds. Every network row has ``n_seeds``.

    ``baselines`` (``"all"``, or names as for ``evaluate``) adds their rows, fitted on the
    same fraction of the training years; the figure draws the best of them as a line.
    ``done`` maps a fraction to already trained ``(finetuned, scratch)`` runs to reuse for
    the first seed; ``overwrite`` replaces an earlier curve at ``out``.
    """
    fractions = parse_fractions(fractions)
    seeds = _check_seeds(seeds, cfg.seed)
    claim: dict[str, Any] = {
        "command": "curve",
        "inputs": [*model_paths(source), *config_inputs(cfg)],
        "overwrite": overwrite,
    }
    require_one_source(cfg.data, "curve")
    out = prepare_output_dir(out, create=False, **claim)
    load_model(source)  # fail early on a bad artifact
    names = parse_baselines(baselines, cfg.task.kind, lead=cfg.task.lead)
    rows: list[dict[str, Any]] = []
    for frac in fractions:
        sub = cfg.model_copy(deep=True)
        sub.data.train_fraction = frac
        view = build_view(sub.data, sub.task)
        prepare_output_dir(out, **claim)  # created only once the data is known to be good
        per_seed: list[list[dict[str, Any]]] = []
        preds: list[dict[str, xr.Dataset]] = []
        for k in range(seeds):
            seeded = sub.model_copy(deep=True)
            seeded.seed = cfg.seed + k
            run = out / f"fraction-{frac:g}" / (f"seed-{seeded.seed}" if seeds > 1 else "")
            if k == 0 and done and frac in done:
                tuned, scratch = done[frac]
            else:
                tuned = finetune(seeded, source, out=run / "finetuned", quiet=True, view=view)
                scratch = train_scratch(seeded, view, run / "scratch")
            models = {"finetuned": load_model(tuned), "scratch": load_model(scratch)}
            metrics, predicted = evaluate_view(view, models, names if k == 0 else [])
            per_seed.append(metrics)
            preds.append(predicted)
        rows += _fraction_rows(view, frac, per_seed, preds)
    with atomic_path(out / "curve.json") as tmp:
        tmp.write_text(json.dumps(rows, indent=2))
    plot_curve(rows, out / "curve.png")
    return out


def _fraction_rows(
    view: TaskView,
    frac: float,
    per_seed: list[list[dict[str, Any]]],
    preds: list[dict[str, xr.Dataset]],
) -> list[dict[str, Any]]:
    """The curve rows of one fraction: networks averaged over seeds, baselines, the gap."""
    base = {"fraction": frac, "n_train": int(view.anchors["train"].size)}
    seeds = len(per_seed)
    rows: list[dict[str, Any]] = []
    for row in per_seed[0]:
        if row["metric"] not in _METRICS:
            continue
        if row["model"] not in _NETWORKS:
            rows.append(base | {k: row[k] for k in ("model", "variable", "metric", "value")})
            continue
        values = [_value(metrics, row) for metrics in per_seed]
        entry = base | {k: row[k] for k in ("model", "variable", "metric")}
        entry |= {"value": float(np.mean(values)), "n_seeds": seeds}
        if seeds > 1:
            entry |= {"std": float(np.std(values, ddof=1)), "values": values}
        rows.append(entry)
    for row in per_seed[0]:
        if row["metric"] == "rmse_diff" and (row["model"], row["reference"]) == _NETWORKS:
            entry = base | {
                k: row[k] for k in ("model", "variable", "metric", "value", *INTERVAL_KEYS)
            }
            if seeds > 1:
                entry |= _pooled_interval(view, preds, str(row["variable"]), seed=row["seed"])
            rows.append(entry | {"n_seeds": seeds})
    return rows


def _value(metrics: list[dict[str, Any]], like: dict[str, Any]) -> float:
    """The value of the row in ``metrics`` for the same model, variable and metric."""
    key = ("model", "variable", "metric")
    return next(
        float(r["value"])
        for r in metrics
        if all(r[k] == like[k] for k in key) and "reference" not in r
    )


def _pooled_interval(
    view: TaskView, preds: list[dict[str, xr.Dataset]], variable: str, *, seed: int
) -> dict[str, Any]:
    """RMSE(fine-tuned) − RMSE(scratch) over all seeds' errors, with its bootstrap interval.

    Per test time, the seeds' weighted squared errors and weights are summed, so the
    difference is that of the RMSEs pooled over seeds and the bootstrap resamples times
    (the seeds of one time stay together).
    """
    truth = view.truth("test").load()[variable]
    weights = None if view.is_scalar else view.weights()
    pooled: list[tuple[np.ndarray, np.ndarray]] = []
    for model in _NETWORKS:
        terms = [squared_errors(p[model][variable], truth, weights) for p in preds]
        pooled.append((np.sum([t[0] for t in terms], 0), np.sum([t[1] for t in terms], 0)))
    iv = paired_interval(pooled[0], pooled[1], seed=seed)
    return {
        "value": iv.diff,
        "ci_low": iv.low,
        "ci_high": iv.high,
        "block_length": iv.block,
        "n_times": iv.n_times,
    }


def plot_curve(
    rows: list[dict[str, Any]], path: Path, *, baselines: dict[str, float] | None = None
) -> Path:
    """Test RMSE of the first variable against the number of training samples.

    One line per network; with several seeds each network's line is the mean with a ±1 standard deviation band;
    the best baseline of the rows (lowest mean RMSE over fractions) is a dashed line, as
    is each of ``baselines`` (name → RMSE).
    """
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    rmse = [r for r in rows if r["metric"] == "rmse"]
    variable = min((r["variable"] for r in rmse), default="")
    rmse = [r for r in rmse if r["variable"] == variable]
    networks = sorted({r["model"] for r in rmse if "n_seeds" in r})
    for model in networks:
        pts = sorted(
            (r["n_train"], r["value"], r.get("std", 0.0), r["n_seeds"])
            for r in rmse
            if r["model"] == model
        )
        x = [p[0] for p in pts]
        n = max(p[3] for p in pts)
        (line,) = ax.plot(x, [p[1] for p in pts], marker="o", label=_label(model, n))
        if n > 1:
            lo = [p[1] - p[2] for p in pts]
            hi = [p[1] + p[2] for p in pts]
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    best = _best_baseline([r for r in rmse if "n_seeds" not in r])
    if best:
        line_pts = sorted((r["n_train"], r["value"]) for r in rmse if r["model"] == best)
        ax.plot(
            [p[0] for p in line_pts],
            [p[1] for p in line_pts],
            "k--",
            linewidth=1,
            label=f"{best} (best baseline)",
        )
    for name, value in (baselines or {}).items():
        ax.axhline(value, linestyle="--", linewidth=1, color="grey")
        ax.annotate(name, (ax.get_xlim()[0], value), fontsize=7, color="grey", va="bottom")
    ax.set_xlabel("training samples")
    ax.set_ylabel("test RMSE")
    ax.set_title(f"{variable}: data efficiency, fine-tuned vs scratch")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def _label(model: str, seeds: int) -> str:
    return f"{model} (mean ± sd of {seeds} seeds)" if seeds > 1 else model


def _best_baseline(rows: list[dict[str, Any]]) -> str | None:
    """The baseline with the lowest mean RMSE over the fractions (first variable's rows)."""
    means: dict[str, list[float]] = {}
    for r in rows:
        if math.isfinite(r["value"]):
            means.setdefault(r["model"], []).append(r["value"])
    return min(means, key=lambda m: float(np.mean(means[m])), default=None)
