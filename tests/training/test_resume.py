"""``--resume`` compares the run's saved config as this version reads it."""

from __future__ import annotations

import pytest
import yaml

from climatune.config import dump_config, load_config
from climatune.errors import ClimatuneError
from climatune.training.resume import check_resume_config


def test_a_config_saved_with_the_old_model_fields_still_matches(tmp_path):
    cfg = load_config(None, ["model.width=8", "model.depth=1"])
    saved = yaml.safe_load(dump_config(cfg))
    old = {"backbone": "unet", "width": 8, "depth": 1, "dropout": 0.0, "patch": 4, "heads": 4}
    saved["model"] = {**old, "residual": True}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    check_resume_config(tmp_path, cfg)  # no error
    with pytest.raises(ClimatuneError, match=r"model.width \(8 -> 16\)"):
        check_resume_config(tmp_path, load_config(None, ["model.width=16", "model.depth=1"]))
