"""The artifact's JSON: each task setting stored once, and the stored config's sections known."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from climatune.config import Config, model_config
from climatune.data.settings import TaskConfig
from climatune.inference import TASK_KEYS, load_model
from climatune.inference.artifact import CONFIG_SECTIONS

V1 = Path(__file__).resolve().parents[1] / "fixtures" / "artifact_v1" / "model"


def test_the_stored_config_sections_are_the_configs():
    assert set(CONFIG_SECTIONS) == set(Config.model_fields)
    assert set(TASK_KEYS) < set(TaskConfig.model_fields)


def test_a_migrated_artifact_holds_each_task_setting_once():
    raw = json.loads((V1 / "climatune.json").read_text())
    meta = load_model(V1).meta
    assert meta.data["task"] == raw["task"]
    assert not set(meta.data["config"]["task"]) & set(TASK_KEYS)
    assert "residual_index" not in meta.data
    cfg = model_config(meta, ["trainer.max_epochs=3"])
    with pytest.warns(FutureWarning, match="task.patch is now task.mask_patch"):
        before = TaskConfig.model_validate(raw["config"]["task"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the migration renamed the old key: no warning
        assert cfg.task == meta.task_config == before
    assert cfg.trainer.max_epochs == 3 and cfg.data == meta.data_config
