"""Deletion curves against random deletion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from climatune.explain.faithfulness import FRACTIONS, deletion_curves, write_faithfulness


class FirstCells(nn.Module):
    """The sum of the first 10 of 400 cells: the other 390 do not matter."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :10].sum(1)


@pytest.fixture
def case():
    x = torch.randn(4, 1, 1, 20, 20, generator=torch.Generator().manual_seed(0)) + 3.0
    truth = np.zeros(x.shape, np.float32)
    truth.reshape(4, -1)[:, :10] = 1.0
    return FirstCells(), x, torch.zeros_like(x), truth


def test_true_attribution_beats_random(case, tmp_path: Path) -> None:
    f, x, base, truth = case
    result = deletion_curves(f, x, base, truth)
    assert result["fractions"] == list(FRACTIONS)
    assert result["attribution"][0] == 0.0 and result["random"][0] == 0.0
    # Deleting the top 5 % (20 cells) removes all 10 relevant ones: the whole signal.
    at5 = result["attribution"][FRACTIONS.index(0.05)]
    assert at5 == pytest.approx(float(f(x).abs().mean()), rel=1e-5)
    assert result["attribution"][1] < at5  # 1 % (4 cells) removes only some of it
    assert result["ratio"] > 3.0
    path = write_faithfulness(result, tmp_path, method="test")
    assert json.loads(path.read_text())["method"] == "test"


def test_reversed_attribution_loses_to_random(case) -> None:
    f, x, base, truth = case
    assert deletion_curves(f, x, base, 1.0 - truth)["ratio"] < 1.0


def test_random_order_is_seeded_and_nan_cells_are_never_deleted(case) -> None:
    f, x, base, truth = case
    truth = truth.copy()
    truth.reshape(4, -1)[:, :10] = np.nan  # the relevant cells are "invalid": never deleted
    a = deletion_curves(f, x, base, truth, seed=3)
    assert a["random"] == deletion_curves(f, x, base, truth, seed=3)["random"]
    assert max(a["attribution"]) == 0.0 and max(a["random"]) == 0.0 and a["ratio"] is None
