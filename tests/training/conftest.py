"""Fixtures of the training tests."""

from __future__ import annotations

import pytest

from climatune.testing import tiny_archive


@pytest.fixture
def archive(tmp_path):
    return tiny_archive(tmp_path / "tiny.nc")
