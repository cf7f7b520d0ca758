"""Blocked cross-validation folds over the non-test years.

The training and validation years of a config's split (or of the default split) are cut
into ``K`` contiguous blocks of years. Fold ``k`` validates on block ``k`` and trains on
the others; the test block stays in the split only so that its years remain excluded. A
sample belongs to a block only if every step it reads lies in that block's years
(:mod:`climatune.data.splits`), so no fold's training samples share a time step with its
validation samples, and no year is dropped for nothing.

Examples
--------
>>> fold_splits((1990, 2019), 3, test=(2020, 2029))[1]
{'train': [[1990, 1999], [2010, 2019]], 'val': [2000, 2009], 'test': [2020, 2029]}
"""

from __future__ import annotations

from typing import Any

from climatune.config import Config, config_from_dict
from climatune.data.splits import fold_blocks
from climatune.data.view import TaskView
from climatune.errors import ClimatuneError

__all__ = ["cv_years", "fold_splits", "fold_configs"]

Block = tuple[int, int]


def cv_years(view: TaskView) -> tuple[Block, Block | None]:
    """The non-test years ``(first, last)`` of a view's split, and its test block (or None).

    Parameters
    ----------
    view
        The view of the base config, whose ``blocks`` are the resolved split.
    """
    test = view.blocks.get("test")
    others = [b for k, b in view.blocks.items() if k.split("#")[0] != "test"]
    first, last = min(b[0] for b in others), max(b[1] for b in others)
    if test is not None and first <= test[0] <= last:
        raise ClimatuneError(
            f"the test block {test[0]}-{test[1]} lies inside the training and validation years "
            f"{first}-{last}; cross-validation needs them contiguous, so move data.split.test to "
            "the start or the end"
        )
    return (first, last), test


def fold_splits(years: Block, folds: int, test: Block | None = None) -> list[dict[str, Any]]:
    """``data.split`` of each fold: validate on one block, train on the others."""
    blocks = fold_blocks(years[0], years[1], folds)
    return [
        {
            "train": [list(b) for i, b in enumerate(blocks) if i != k],
            "val": list(blocks[k]),
            "test": list(test) if test is not None else None,
        }
        for k in range(folds)
    ]


def fold_configs(cfg: Config, splits: list[dict[str, Any]]) -> list[Config]:
    """One config per fold: ``cfg`` with its split replaced and no progress bar."""
    out = []
    for k, split in enumerate(splits):
        raw = cfg.model_dump(mode="json")
        raw["data"]["split"] = split
        raw["trainer"]["progress_bar"] = False
        out.append(config_from_dict(raw, f"fold {k}"))
    return out
