"""Search spaces: parsing, validation against the config, sampling."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from climatune.config import Config, config_from_dict
from climatune.errors import ClimatuneError
from climatune.tuning.space import config_keys, load_space, parse_space, set_keys, suggest

from .conftest import SPACE


def test_config_keys_are_leaves() -> None:
    keys = config_keys()
    assert {
        "optim.lr",
        "model.dropout",
        "data.region.halo",
        "finetune.normalization.default",
    } <= set(keys)
    assert "optim" not in keys and "data.region" not in keys
    assert {"model.mults", "model.blocks", "model.patch", "model.head.hidden"} <= set(keys)


def test_backbone_options_are_checked_against_the_base_backbone() -> None:
    vit = Config.model_validate({"model": {"backbone": "vit"}}).model_dump(mode="json")
    space = parse_space({"model.patch": {"type": "int", "low": 2, "high": 8}}, base=vit)
    assert space["model.patch"].high == 8
    with pytest.raises(
        ClimatuneError, match="'patch' is an option of backbone 'vartoken_vit' and 'vit', not of"
    ):
        parse_space({"model.patch": {"type": "int", "low": 2, "high": 8}})


def test_parse_space_reads_every_kind() -> None:
    space = parse_space(
        {
            **SPACE,
            "model.depth": {"type": "int", "low": 1, "high": 3},
            "optim.weight_decay": {"type": "float", "low": "1e-6", "high": 1.0e-2, "log": True},
        }
    )
    assert space["optim.lr"].log and space["optim.lr"].low == 1e-4
    assert space["data.batch_size"].choices == (4, 8)
    assert space["model.depth"].kind == "int"
    assert space["optim.weight_decay"].low == 1e-6  # YAML's "1e-6" string is read as a number


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (
            {"optim.lerning_rate": {"type": "float", "low": 0.1, "high": 0.2}},
            "did you mean 'optim.lr'",
        ),
        ({"optim": {"type": "float", "low": 0.1, "high": 0.2}}, "unknown config key 'optim'"),
        (
            {"optim.lr": {"type": "uniform", "low": 0.1, "high": 0.2}},
            "type float, int or categorical",
        ),
        ({"optim.lr": {"type": "float", "low": 0.2, "high": 0.1}}, "must be below high"),
        (
            {"optim.lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}},
            "log range needs low > 0",
        ),
        ({"optim.lr": {"type": "float", "low": 0.1, "hi": 0.2}}, "unknown field 'hi'"),
        ({"optim.lr": {"type": "float", "low": "a", "high": 0.2}}, "low must be a number"),
        ({"model.depth": {"type": "int", "low": 1.5, "high": 3}}, "low must be an integer"),
        ({"data.batch_size": {"type": "categorical", "choices": []}}, "non-empty list"),
        ({"data.batch_size": {"type": "float", "low": 4, "high": 16}}, "data.batch_size"),
        ({"model.dropout": {"type": "float", "low": 0.0, "high": 1.0}}, "model.dropout"),
        (
            {"finetune.strategy": {"type": "categorical", "choices": ["full", "half"]}},
            "finetune.strategy",
        ),
        (
            {"data.split.val": {"type": "categorical", "choices": [[1, 2]]}},
            "the folds choose the years",
        ),
        ({}, "must map config keys"),
    ],
)
def test_parse_space_rejects(raw: dict, match: str) -> None:
    with pytest.raises(ClimatuneError, match=match):
        parse_space(raw, "space.yaml")


def test_load_space_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ClimatuneError, match="does not exist"):
        load_space(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim.lr: {type: float, low: [")
    with pytest.raises(ClimatuneError, match="bad.yaml is not valid YAML"):
        load_space(bad)


def test_suggest_and_set_keys_give_valid_configs() -> None:
    space = parse_space(SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    base = Config().model_dump(mode="json")
    for _ in range(5):
        trial = study.ask()
        params = suggest(trial, space)
        assert 1e-4 <= params["optim.lr"] <= 3e-3 and params["data.batch_size"] in (4, 8)
        cfg = config_from_dict(set_keys(base, params))
        assert (
            cfg.optim.lr == params["optim.lr"] and cfg.data.batch_size == params["data.batch_size"]
        )
    assert base == Config().model_dump(mode="json")  # set_keys copies
