"""Tiny seeded inputs shared by the model tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

Inputs = tuple[torch.Tensor, torch.Tensor]

VARIABLES = ["tas", "sst", "siconc"]
N_STATIC = 3
TINY = {"width": 8, "depth": 2}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def make_inputs() -> Callable[..., Inputs]:
    """``make_inputs(h, w, batch=2, n_vars=3, history=2)`` -> ``(fields, static)``."""

    def make(
        h: int, w: int, batch: int = 2, n_vars: int = len(VARIABLES), history: int = 2
    ) -> Inputs:
        gen = torch.Generator().manual_seed(h * 1000 + w)
        fields = torch.randn(batch, n_vars, history, h, w, generator=gen)
        static = torch.randn(batch, N_STATIC, h, w, generator=gen)
        return fields, static

    return make
