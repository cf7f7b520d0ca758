"""What a study leaves in the tuning directory: ``best.yaml``, ``best.json``, ``trials.csv``.

``best.yaml`` is a complete config, the base config with the best parameters applied and its
own split, that ``climatune finetune`` or ``climatune pretrain`` runs as it is.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from climatune.config import Config, config_from_dict, dump_config
from climatune.tuning.space import set_keys
from climatune.utils.atomic import atomic_path

__all__ = ["best_trial", "best_config", "trial_rows", "write_trials", "write_best"]


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best complete trial, or None while no trial has completed."""
    try:
        return study.best_trial
    except ValueError:
        return None


def best_config(base: Config, params: dict[str, Any]) -> Config:
    """``base`` with ``params`` (dotted keys) applied; the split stays the base's."""
    return config_from_dict(set_keys(base.model_dump(mode="json"), params), "the best parameters")


def trial_rows(study: optuna.Study, folds: int) -> list[dict[str, Any]]:
    """One row per trial: number, state, value, duration, ``params_<key>``, ``fold_<k>``."""
    trials = study.get_trials(deepcopy=False)
    keys = list(dict.fromkeys(k for t in trials for k in t.params))
    rows = []
    for t in trials:
        duration = t.duration.total_seconds() if t.duration is not None else None
        row: dict[str, Any] = {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "duration_s": None if duration is None else round(duration, 1),
        }
        row |= {f"params_{k}": t.params.get(k) for k in keys}
        values = list(t.user_attrs.get("fold_values", []))
        row |= {f"fold_{k}": values[k] if k < len(values) else None for k in range(folds)}
        rows.append(row)
    return rows


def write_trials(study: optuna.Study, out: Path, folds: int) -> Path:
    """``trials.csv``: :func:`trial_rows` (empty cells for what a trial lacks)."""
    rows = trial_rows(study, folds)
    header = list(rows[0]) if rows else ["number", "state", "value", "duration_s"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header)
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    with atomic_path(out / "trials.csv") as tmp:
        tmp.write_text(buf.getvalue())
    return out / "trials.csv"


def write_best(
    study: optuna.Study, base: Config, out: Path, *, folds: int, metric: str
) -> FrozenTrial | None:
    """``best.yaml`` (a runnable config) and ``best.json`` (the trial's summary).

    Returns the best trial, or None (writing nothing) while no trial has completed.
    """
    best = best_trial(study)
    if best is None:
        return None
    cfg = best_config(base, best.params)
    counts = {s.name.lower(): 0 for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    for t in study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    ):
        counts[t.state.name.lower()] += 1
    tuned = yaml.safe_dump(best.params, sort_keys=False, default_flow_style=False).splitlines()
    header = [
        f"# climatune tune: trial {best.number}, the best of {counts['complete']} complete trials "
        f"in study '{study.study_name}'",
        f"# mean validation {metric} over {folds} folds: {best.value:.6g}",
        "# tuned keys:",
        *(f"#   {line}" for line in tuned),
    ]
    with atomic_path(out / "best.yaml") as tmp:
        tmp.write_text("\n".join(header) + "\n" + dump_config(cfg))
    summary = {
        "study": study.study_name,
        "trial": best.number,
        "value": best.value if best.value is not None and math.isfinite(best.value) else None,
        "metric": metric,
        "direction": study.direction.name.lower(),
        "folds": folds,
        "fold_values": best.user_attrs.get("fold_values", []),
        "params": best.params,
        "trials": counts,
    }
    with atomic_path(out / "best.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    return best
