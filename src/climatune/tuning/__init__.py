"""Hyperparameter tuning by blocked cross-validation over years, with an Optuna study.

- :mod:`~climatune.tuning.space`: the search-space YAML (dotted config keys → distributions).
- :mod:`~climatune.tuning.folds`: contiguous folds of the non-test years, with gaps.
- :mod:`~climatune.tuning.objective`: train and score each fold, report, prune.
- :mod:`~climatune.tuning.study`: the study in shared RDB storage (SQLite, PostgreSQL).
- :mod:`~climatune.tuning.results`, :mod:`~climatune.tuning.plots`: what the study leaves.
- :mod:`~climatune.tuning.search`: ``climatune tune`` (:func:`tune_command`).
"""

__all__: list[str] = []
