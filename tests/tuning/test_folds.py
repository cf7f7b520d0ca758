"""Folds: no fold trains on its validation block or on the test years."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from climatune.config import config_from_dict
from climatune.data.view import TaskView, build_view
from climatune.errors import ClimatuneError
from climatune.testing import tiny_annual_archive, tiny_config
from climatune.tuning.folds import cv_years, fold_configs, fold_splits

from .conftest import ANNUAL, SPLIT


def _read_steps(view: TaskView, split: str) -> set[int]:
    """Every time index that the samples of ``split`` read: inputs and targets."""
    out: set[int] = set()
    for a in view.anchors[split]:
        out.update(range(int(a) - view.history + 1, int(a) + 1))
        out.add(int(view.target_index(a)))
    return out


def test_fold_splits_cover_the_non_test_years() -> None:
    splits = fold_splits((1990, 2013), 3, (2014, 2019))
    vals = [tuple(s["val"]) for s in splits]
    assert vals == [(1990, 1997), (1998, 2005), (2006, 2013)]
    assert splits[1]["train"] == [[1990, 1997], [2006, 2013]]
    assert all(s["test"] == [2014, 2019] for s in splits)


@pytest.mark.parametrize(
    ("task", "folds"),
    [
        ({"history": 2, "lead": 1}, 2),
        ({"history": 1, "lead": 2}, 3),
        ({"kind": "downscale", "factor": 2}, 3),
    ],
)
def test_no_fold_trains_on_its_validation_or_test_years(
    tiny_nc: Path, task: dict, folds: int
) -> None:
    cfg = tiny_config(tiny_nc, *ANNUAL, *(f"task.{k}={v}" for k, v in task.items()))
    base = build_view(cfg.data, cfg.task)
    years, test = cv_years(base)
    assert years == (1990, 2013) and test == (2014, 2019)
    test_steps = _read_steps(base, "test")
    for k, fold_cfg in enumerate(fold_configs(cfg, fold_splits(years, folds, test))):
        view = build_view(fold_cfg.data, fold_cfg.task)
        train, val = _read_steps(view, "train"), _read_steps(view, "val")
        assert train and val
        assert not train & val, f"fold {k}: training reads validation steps"
        assert not (train | val) & test_steps, f"fold {k}: reads test steps"
        # In years, too: nothing of the test block, and the validation block is fold k's.
        year = view.fields.time.dt.year.values
        assert year[sorted(train | val)].max() < 2014
        lo, hi = fold_cfg.data.split.val
        assert lo <= year[sorted(val)].min() and year[sorted(val)].max() <= hi
        assert not set(year[sorted(train)]) & set(range(lo, hi + 1))
        # The contiguous range the view reports for "val" stays inside the validation block.
        assert set(view.steps("val").tolist()) == val
        # The test block is still there (excluded from training), exactly as in the base.
        np.testing.assert_array_equal(view.anchors["test"], base.anchors["test"])


def test_split_without_test_uses_every_year(tiny_nc: Path) -> None:
    raw = tiny_config(tiny_nc, *ANNUAL).model_dump(mode="json")
    raw["data"]["split"] = {"train": [1990, 2009], "val": [2010, 2019]}
    cfg = config_from_dict(raw)
    years, test = cv_years(build_view(cfg.data, cfg.task))
    assert years == (1990, 2019) and test is None


def test_default_split_is_used_when_none_is_given(tiny_nc: Path) -> None:
    raw = tiny_config(tiny_nc, *ANNUAL).model_dump(mode="json")
    del raw["data"]["split"]
    cfg = config_from_dict(raw)
    years, test = cv_years(build_view(cfg.data, cfg.task))
    assert test is not None and years[1] < test[0] and years[0] == 1990


def test_test_block_between_folds_is_refused(tiny_nc: Path) -> None:
    raw = tiny_config(tiny_nc, *ANNUAL).model_dump(mode="json")
    raw["data"]["split"] = {"train": [1990, 2004], "test": [2006, 2010], "val": [2012, 2019]}
    cfg = config_from_dict(raw)
    with pytest.raises(ClimatuneError, match="move data.split.test"):
        cv_years(build_view(cfg.data, cfg.task))


def test_split_is_left_alone_in_the_base(tiny_nc: Path) -> None:
    cfg = tiny_config(tiny_nc, *ANNUAL)
    fold_configs(cfg, fold_splits((1990, 2013), 2, (2014, 2019)))
    assert cfg.data.split.model_dump() == {k: tuple(v) for k, v in SPLIT.items()}


def test_history_1_lead_0_samples_every_year_of_every_block(tiny_nc: Path) -> None:
    # a downscaling task reads one step and predicts it: history 1, lead 0
    cfg = tiny_config(tiny_nc, *ANNUAL, "task.kind=downscale", "task.factor=2")
    view = build_view(cfg.data, cfg.task)
    for name, (y0, y1) in view.blocks.items():
        assert list(view.target_times(name).dt.year.values) == list(range(y0, y1 + 1)), name


def test_history_3_lead_2_samples_read_only_their_block(tiny_nc: Path) -> None:
    cfg = tiny_config(tiny_nc, *ANNUAL, "task.history=3", "task.lead=2")
    view = build_view(cfg.data, cfg.task)
    year = view.fields.time.dt.year.values
    read = {name: _read_steps(view, name) for name in ("train", "val", "test")}
    for name, (y0, y1) in view.blocks.items():
        assert view.anchors[name].size == (y1 - y0 + 1) - 3 + 1 - 2, name
        assert y0 <= year[sorted(read[name])].min() and year[sorted(read[name])].max() <= y1
    assert view.n_samples() == {"train": 14, "val": 2, "test": 2}
    assert not read["train"] & read["val"] and not read["train"] & read["test"]
    assert not read["val"] & read["test"]


def test_five_folds_over_50_years_keep_10_year_blocks(tmp_path: Path) -> None:
    fifty = tiny_annual_archive(tmp_path / "fifty.nc", years=50)
    raw = tiny_config(fifty, *ANNUAL, "task.kind=downscale", "task.factor=2").model_dump(
        mode="json"
    )
    raw["data"]["split"] = {"train": [1990, 2029], "val": [2030, 2039]}
    cfg = config_from_dict(raw)
    years, test = cv_years(build_view(cfg.data, cfg.task))
    assert years == (1990, 2039) and test is None
    for fold_cfg in fold_configs(cfg, fold_splits(years, 5, test)):
        assert build_view(fold_cfg.data, fold_cfg.task).n_samples() == {"train": 40, "val": 10}
