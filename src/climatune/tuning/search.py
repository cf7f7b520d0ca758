"""``climatune tune``: an Optuna search scored by blocked cross-validation over years.

Examples
--------
Fine-tune the A1B downscaler with 12 trials of 3 folds each (resumable, shareable)::

    climatune tune --config examples/a1b/finetune.yaml --from runs/a1b-pretrain \\
        --space examples/a1b/tune_space.yaml --trials 12 --folds 3 --out runs/a1b-tune
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna

from climatune.config import Config, config_inputs
from climatune.data.view import build_view
from climatune.errors import ClimatuneError
from climatune.finetune.transfer import check_parent
from climatune.inference import load_model, model_paths
from climatune.tuning.folds import cv_years, fold_configs, fold_splits
from climatune.tuning.objective import METRICS, Objective
from climatune.tuning.plots import plot_history, plot_importance, save_figure
from climatune.tuning.results import write_best, write_trials
from climatune.tuning.space import Param, load_space
from climatune.tuning.study import default_storage, open_storage, open_study, storage_errors
from climatune.utils.atomic import prepare_output_dir, releases_outputs

__all__ = ["tune_command", "load_space_for", "write_outputs"]

_WRITE_LOCK = threading.Lock()
#: The model.* settings that fine-tuning reads; the rest come from the pre-trained model.
_FINETUNE_MODEL_KEYS = ("model.residual", "model.head", "model.head_distribution")


@releases_outputs
def tune_command(
    cfg: Config,
    *,
    source: str | Path | None = None,
    space: str | Path,
    trials: int = 10,
    folds: int = 3,
    storage: str | None = None,
    study: str = "climatune",
    jobs: int = 1,
    out: str | Path,
    metric: str = "rmse",
) -> Path:
    """Run ``trials`` more trials of the study and write its results into ``out``.

    Parameters
    ----------
    cfg
        The base config; the search space overrides some of its keys.
    source
        A pre-trained artifact to fine-tune in every fold; None trains from scratch.
    space
        The search-space YAML file (:func:`~climatune.tuning.space.load_space`).
    trials, folds, jobs
        Trials to add in this run, cross-validation folds, trials run in parallel threads.
    storage, study
        The RDB storage URL (default ``sqlite:///OUT/study.db``) and study name; the study
        is resumed if it exists, and shared by every worker that names it.
    out
        The tuning directory: ``best.yaml``, ``best.json``, ``trials.csv``, figures, and
        the small logs of every fold under ``trials/``.
    metric
        Validation metric to optimise (``rmse`` by default; see
        :data:`~climatune.tuning.objective.METRICS`).

    Returns
    -------
    The tuning directory.
    """
    if trials < 0 or jobs < 1:
        raise ClimatuneError(f"--trials must be >= 0 and --jobs >= 1; got {trials} and {jobs}")
    if metric not in METRICS:
        raise ClimatuneError(f"unknown metric '{metric}'; choose from {', '.join(METRICS)}")
    if cfg.data.sources and len(cfg.data.sources) > 1:  # their steps share (year, month)
        raise ClimatuneError(
            f"tune scores each fold on one archive, and data.sources lists "
            f"{len(cfg.data.sources)} ({', '.join(s.name for s in cfg.data.sources)}): tune on "
            "one of them (one data.sources entry, or data.path), then train on all with the "
            "chosen settings"
        )
    claim: dict[str, Any] = {
        "command": "tune",
        "inputs": [space, *(model_paths(source) if source else []), *config_inputs(cfg)],
        "resume": True,  # the same command again adds trials to the study
        "shared": True,  # workers of one study may share the folder
    }
    prepare_output_dir(out, create=False, **claim)  # a bad --out fails before any work
    params = load_space_for(cfg, space, source)
    parent = load_model(source) if source is not None else None  # fail early on a bad one
    view = build_view(cfg.data, cfg.task)
    if parent is not None:  # and on a config that its fine-tunes refuse, before --out
        check_parent(parent, view, cfg.data.normalization)
    years, test = cv_years(view)
    splits = fold_splits(years, folds, test)
    for k, fold_cfg in enumerate(fold_configs(cfg, splits)):
        try:
            build_view(
                fold_cfg.data, fold_cfg.task
            )  # fail early on a fold too short for the samples
        except ClimatuneError as exc:
            raise ClimatuneError(f"fold {k} of {folds}: {exc}; use fewer --folds") from None
    db = open_storage(storage) if storage else None  # a bad URL fails before --out exists
    out = prepare_output_dir(out, **claim)
    url = storage or default_storage(out)
    objective = Objective(cfg, params, splits, out, source, metric)

    def _after_trial(study_: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        # Tables after every trial (cheap); the figures once at the end, or with --trials 0.
        write_outputs(study_, cfg, out, folds=folds, metric=metric, figures=False)

    with storage_errors(url), _quiet_training():
        db = db or open_storage(url)
        run = open_study(db, study, direction=METRICS[metric], folds=folds, metric=metric)
        run.optimize(objective, n_trials=trials, n_jobs=jobs, callbacks=[_after_trial])
    if objective.error is not None:
        raise objective.error
    best = write_outputs(run, cfg, out, folds=folds, metric=metric)
    if best is None:
        raise ClimatuneError(
            f"no trial of study '{study}' has completed yet (see {out / 'trials.csv'}); "
            "run more --trials"
        )
    return out


def load_space_for(cfg: Config, space: str | Path, source: str | Path | None) -> dict[str, Param]:
    """The search space, checked against ``cfg`` and against training with(out) ``--from``."""
    params = load_space(space, base=cfg.model_dump(mode="json"))
    idle = [k for k in params if k.startswith("finetune.")]
    if source is None and idle:
        raise ClimatuneError(
            f"space key '{idle[0]}' only matters when fine-tuning; give --from PRETRAINED "
            "or remove it"
        )
    fixed = [
        k
        for k in params
        if k.startswith("model.")
        and not any(k == f or k.startswith(f + ".") for f in _FINETUNE_MODEL_KEYS)
    ]
    if source is not None and fixed:
        raise ClimatuneError(
            f"space key '{fixed[0]}' has no effect with --from: the fine-tuned network keeps "
            "the pre-trained architecture; remove it (or tune it without --from)"
        )
    return params


def write_outputs(
    study: optuna.Study, base: Config, out: Path, *, folds: int, metric: str, figures: bool = True
) -> optuna.trial.FrozenTrial | None:
    """Write ``trials.csv``, ``best.yaml``, ``best.json`` and (with ``figures``) the two PNGs.

    Returns the best trial, or None while no trial has completed.
    """
    with _WRITE_LOCK:
        for attempt in range(3):
            try:
                write_trials(study, out, folds)
                best = write_best(study, base, out, folds=folds, metric=metric)
                if figures:
                    history = plot_history(study, f"mean validation {metric}")
                    save_figure(history, out / "tune_history.png")
                    save_figure(plot_importance(study), out / "tune_importance.png")
                return best
            except FileNotFoundError:
                # Another worker writing the same --out may have swept our temporary file
                # away as a stale leftover; the next attempt writes it again.
                if attempt == 2:
                    raise
                time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


@contextmanager
def _quiet_training() -> Iterator[None]:
    """Keep Lightning's per-fit banners and hints out of the tuning log."""
    import lightning.pytorch  # noqa: F401  (its import sets the logger's level)

    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="lightning")
            yield
    finally:
        logger.setLevel(level)
