"""Hyperparameter tuning by blocked cross-validation over years, with an Optuna study.

- :mod:`~climatune.tuning.space`: the search-space YAML (dotted config keys → distributions).
- :mod:`~climatune.tuning.folds`: contiguous folds of the non-test years, with gaps.
- :mod:`~climatune.tuning.objective`: train and score each fold, report, prune.
- :mod:`~climatune.tuning.study`: the study in shared RDB storage (SQLite, PostgreSQL).
- :mod:`~climatune.tuning.results`, :mod:`~climatune.tuning.plots`: what the study leaves.
- :mod:`~climatune.tuning.search`: ``climatune tune`` (:func:`tune_command`).

Names are imported on first use (Optuna and the training stack are heavy).
"""

from climatune.utils.lazy import lazy_exports

_OWNERS = {
    "best_config": "results",
    "best_trial": "results",
    "config_keys": "space",
    "cv_years": "folds",
    "default_storage": "study",
    "fold_configs": "folds",
    "fold_splits": "folds",
    "load_space": "space",
    "load_space_for": "search",
    "METRICS": "objective",
    "Objective": "objective",
    "open_storage": "study",
    "open_study": "study",
    "Param": "space",
    "parse_space": "space",
    "plot_history": "plots",
    "plot_importance": "plots",
    "save_figure": "plots",
    "score_fold": "objective",
    "set_keys": "space",
    "storage_errors": "study",
    "suggest": "space",
    "train_fold": "objective",
    "trial_rows": "results",
    "tune_command": "search",
    "write_best": "results",
    "write_outputs": "search",
    "write_trials": "results",
}
__all__ = sorted(_OWNERS)
__getattr__ = lazy_exports(__name__, _OWNERS)
