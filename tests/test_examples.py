"""The example configs: the packaged copy is the repository's, and the synthetic example
keeps its fine-tuning test years out of pre-training."""

from __future__ import annotations

from pathlib import Path

import climatune
from climatune.config import load_config

ROOT = Path(__file__).resolve().parents[1]
PACKAGED = Path(climatune.__file__).parent / "examples"


def test_the_repositorys_examples_are_the_packaged_ones() -> None:
    """``examples/`` is a link to ``src/climatune/examples``: one copy, shipped in the wheel."""
    assert (ROOT / "examples").resolve() == PACKAGED.resolve()
    assert {p.name for p in PACKAGED.iterdir() if p.is_dir()} >= {"a1b", "synthetic"}


def test_synthetic_pretraining_never_trains_on_the_fine_tuning_test_years() -> None:
    pre = load_config(ROOT / "examples" / "synthetic" / "pretrain.yaml")
    tune = load_config(ROOT / "examples" / "synthetic" / "finetune.yaml")
    assert pre.data.split is not None and tune.data.split is not None
    assert tune.data.split.test is not None and pre.data.split.test == tune.data.split.test
    first_test = tune.data.split.test[0]
    for block in (pre.data.split.train, pre.data.split.val, tune.data.split.train):
        blocks = block if isinstance(block, list) else [block]
        assert all(b[1] < first_test for b in blocks)
    # the same inputs and history, so the whole network transfers
    assert (pre.data.variables, pre.task.history, pre.task.lead) == (
        tune.data.variables,
        tune.task.history,
        tune.task.lead,
    )
