"""workflows: the commands that take the whole config and combine steps.

``pretrain``, ``finetune``, scratch training, ``evaluate``, ``curve`` and ``demo``. The
layers below read config sections or typed arguments, never
:class:`~climatune.config.Config`; every training run goes through
:func:`climatune.training.workflow.run_training`.
"""
