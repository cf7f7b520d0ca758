"""Shared test fixtures (the data helpers themselves are in :mod:`climatune.testing`)."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads; see utils/openmp.py
if os.environ.get("PYTEST_XDIST_WORKER"):  # parallel workers share the cores: one thread each
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from collections.abc import Callable  # noqa: E402

import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from climatune.testing import create_test_data  # noqa: E402


@pytest.fixture
def make_test_dataset() -> Callable[..., xr.Dataset]:
    """Factory for :func:`climatune.testing.create_test_data`."""
    return create_test_data
