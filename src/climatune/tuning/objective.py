"""The objective of a trial: train on each fold, score its validation block, prune early.

Each fold is trained as ``climatune finetune`` (given a pre-trained artifact) or
``climatune pretrain`` (without one) would train it, then scored in physical units through
:func:`~climatune.evaluation.evaluate.evaluate_view` on the fold's validation block.
After fold ``k`` the trial reports the running mean of its fold scores at step ``k``, so
the pruner compares trials on the same folds with an estimate of the final objective.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from climatune.config import Config, config_from_dict
from climatune.data.view import TaskView, build_view
from climatune.errors import ClimatuneError
from climatune.evaluation.evaluate import evaluate_view
from climatune.inference import load_model
from climatune.training.workflow import Scratch, run_training
from climatune.tuning.folds import fold_configs
from climatune.tuning.space import Param, set_keys, suggest
from climatune.workflows.finetuning import finetune
from climatune.workflows.runs import training_setup, write_config

__all__ = ["METRICS", "Objective", "train_fold", "score_fold"]

#: Metrics a study can optimise, and their direction.
METRICS = {
    "rmse": "minimize",
    "mae": "minimize",
    "acc": "maximize",
    "skill": "maximize",
    "corr": "maximize",
}


def train_fold(cfg: Config, view: TaskView, source: str | Path | None, run: Path) -> Path:
    """Train one fold into ``run``; returns the model directory.

    With ``source`` it fine-tunes that artifact, otherwise it trains from scratch.
    """
    if source is not None:
        return finetune(cfg, source, out=run, quiet=True, view=view) / "model"
    run_training(
        view,
        run,
        training_setup(cfg),
        init=Scratch(),
        origin="pretrain",
        start=lambda: write_config(run, cfg),
    )
    return run / "model"


def score_fold(view: TaskView, model_dir: Path, metric: str = "rmse") -> float:
    """``metric`` of the model on the view's validation block, averaged over target variables."""
    rows, _ = evaluate_view(view, {"model": load_model(model_dir)}, [], split="val")
    values = [float(r["value"]) for r in rows if r["metric"] == metric]
    if not values:
        raise ClimatuneError(f"metric '{metric}' does not apply to a {view.kind} task; try rmse")
    return sum(values) / len(values)


@dataclass
class Objective:
    """Callable for :meth:`optuna.Study.optimize`: the mean fold score of a sampled config.

    Parameters
    ----------
    base
        The config that the sampled parameters override.
    space
        The search space.
    splits
        ``data.split`` of each fold (:func:`~climatune.tuning.folds.fold_splits`).
    out
        The tuning directory; fold ``k`` of trial ``n`` trains under ``out/trials/n/fold-k``.
    source
        A pre-trained artifact to fine-tune, or None to train from scratch.
    metric
        The validation metric (:data:`METRICS`).
    """

    base: Config
    space: dict[str, Param]
    splits: list[dict[str, Any]]
    out: Path
    source: str | Path | None = None
    metric: str = "rmse"
    error: ClimatuneError | None = field(default=None, init=False)

    def config(self, params: dict[str, Any], label: str = "sampled config") -> Config:
        """The base config with ``params`` applied, validated."""
        return config_from_dict(set_keys(self.base.model_dump(mode="json"), params), label)

    def __call__(self, trial: optuna.Trial) -> float:
        try:
            return self._run(trial)
        except ClimatuneError as exc:  # a user error: stop the study, report it once, no traceback
            self.error = self.error or ClimatuneError(f"trial {trial.number}: {exc}")
            trial.set_user_attr("error", str(exc))
            trial.study.stop()
            return math.nan

    def _run(self, trial: optuna.Trial) -> float:
        params = suggest(trial, self.space)
        cfg = self.config(params, f"trial {trial.number}")
        scores = []
        for k, fold_cfg in enumerate(fold_configs(cfg, self.splits)):
            run = self.out / "trials" / str(trial.number) / f"fold-{k}"
            shutil.rmtree(run, ignore_errors=True)  # left by another study in the same --out
            view = build_view(fold_cfg.data, fold_cfg.task)
            try:
                value = score_fold(view, train_fold(fold_cfg, view, self.source, run), self.metric)
            finally:
                _tidy(run)
            if not math.isfinite(value):
                return math.nan  # Optuna records the trial as failed and carries on
            scores.append(value)
            trial.set_user_attr("fold_values", list(scores))
            trial.report(sum(scores) / len(scores), k)  # the running mean estimates the objective
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"after fold {k}, mean {self.metric} is worse than the median"
                )
        return sum(scores) / len(scores)


def _tidy(run: Path) -> None:
    """Drop the weights and checkpoints of a scored fold; keep its config and logs."""
    for name in ("checkpoints", "model"):
        shutil.rmtree(run / name, ignore_errors=True)
