"""Workflows: the commands that take the whole config and combine steps.

``pretrain``, ``finetune``, scratch training, ``evaluate``, ``curve`` and ``demo``. The
layers below read config sections or typed arguments, never
:class:`~climatune.config.Config`; every training run goes through
:func:`climatune.training.run_training`.
"""

from climatune.workflows.curve import curve_command, parse_fractions, plot_curve
from climatune.workflows.demo import demo_configs, run_demo
from climatune.workflows.evaluate import evaluate_command
from climatune.workflows.finetuning import finetune, prepare_finetune
from climatune.workflows.pretraining import pretrain, train_scratch
from climatune.workflows.resume import BUDGET_KEYS, check_resume_config, resume_checkpoint
from climatune.workflows.runs import default_run_dir, training_setup, write_config

__all__ = [
    "BUDGET_KEYS",
    "check_resume_config",
    "curve_command",
    "default_run_dir",
    "demo_configs",
    "evaluate_command",
    "finetune",
    "parse_fractions",
    "plot_curve",
    "prepare_finetune",
    "pretrain",
    "resume_checkpoint",
    "run_demo",
    "train_scratch",
    "training_setup",
    "write_config",
]
