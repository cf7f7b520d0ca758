"""Data efficiency: fine-tuned against scratch on growing fractions of the training years."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from climatune.config import Config, config_inputs
from climatune.data.view import build_view
from climatune.errors import ClimatuneError
from climatune.evaluation.bootstrap import INTERVAL_KEYS
from climatune.evaluation.evaluate import evaluate_view, parse_baselines
from climatune.evaluation.maps import save_figure
from climatune.inference import load_model, model_paths
from climatune.utils.atomic import atomic_path, prepare_output_dir, releases_outputs
from climatune.workflows.finetuning import finetune
from climatune.workflows.pretraining import train_scratch

__all__ = ["parse_fractions", "curve_command", "plot_curve"]


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


@releases_outputs
def curve_command(
    cfg: Config,
    source: str | Path,
    fractions: str | Sequence[float],
    out: str | Path,
    *,
    done: dict[float, tuple[Path, Path]] | None = None,
    baselines: str | Sequence[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """``climatune curve``: for each fraction, fine-tune and train from scratch, then score both.

    ``curve.json`` holds the rmse, skill, acc and corr rows of both networks and, per
    fraction, the fine-tuned minus scratch RMSE difference with its 95 % interval
    (``metric: rmse_diff``, :data:`~climatune.evaluation.bootstrap.INTERVAL_KEYS`).
    ``baselines`` (``all`` or names, as for ``evaluate``; none by default) are fitted on
    each fraction's training years too and scored alongside, with the fine-tuned minus
    baseline difference of each.

    ``done`` maps a fraction to already trained ``(finetuned, scratch)`` runs to reuse;
    ``overwrite`` replaces an earlier curve at ``out``.
    """
    fractions = parse_fractions(fractions)
    claim: dict[str, Any] = {
        "command": "curve",
        "inputs": [*model_paths(source), *config_inputs(cfg)],
        "overwrite": overwrite,
    }
    out = prepare_output_dir(out, create=False, **claim)
    load_model(source)  # fail early on a bad artifact
    names = parse_baselines(baselines, cfg.task.kind, lead=cfg.task.lead)
    rows: list[dict[str, Any]] = []
    for frac in fractions:
        sub = cfg.model_copy(deep=True)
        sub.data.train_fraction = frac
        view = build_view(sub.data, sub.task)
        prepare_output_dir(out, **claim)  # created only once the data is known to be good
        n_train = int(view.anchors["train"].size)
        run = out / f"fraction-{frac:g}"
        if done and frac in done:
            tuned, scratch = done[frac]
        else:
            tuned = finetune(sub, source, out=run / "finetuned", quiet=True, view=view)
            scratch = train_scratch(sub, view, run / "scratch")
        metrics, _ = evaluate_view(
            view, {"finetuned": load_model(tuned), "scratch": load_model(scratch)}, names
        )
        for row in metrics:
            if row["metric"] in ("rmse", "skill", "acc", "corr"):
                rows.append(
                    {
                        "fraction": frac,
                        "n_train": n_train,
                        "model": row["model"],
                        "variable": row["variable"],
                        "metric": row["metric"],
                        "value": row["value"],
                    }
                )
            elif row["metric"] == "rmse_diff" and row["model"] == "finetuned":
                rows.append(
                    {"fraction": frac, "n_train": n_train}
                    | {k: row[k] for k in ("model", "variable", "metric", "value", *INTERVAL_KEYS)}
                )
    with atomic_path(out / "curve.json") as tmp:
        tmp.write_text(json.dumps(rows, indent=2))
    plot_curve(rows, out / "curve.png")
    return out


def plot_curve(
    rows: list[dict[str, Any]], path: Path, *, baselines: dict[str, float] | None = None
) -> Path:
    """Test RMSE against the number of training samples, one line per model."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    rmse = [r for r in rows if r["metric"] == "rmse"]
    for model in sorted({r["model"] for r in rmse}):
        pts = sorted((r["n_train"], r["value"]) for r in rmse if r["model"] == model)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=model)
    for name, value in (baselines or {}).items():
        ax.axhline(value, linestyle="--", linewidth=1, color="grey")
        ax.annotate(name, (ax.get_xlim()[0], value), fontsize=7, color="grey", va="bottom")
    ax.set_xlabel("training samples")
    ax.set_ylabel("test RMSE")
    ax.set_title("Data efficiency: fine-tuned vs scratch")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)
