"""A full disk: writing predictions or a synthetic store fails with one line, leaving nothing.

The outputs go to a 64 KiB tmpfs, which needs root (CAP_SYS_ADMIN); elsewhere the tests
skip. netCDF4 reports a full disk as a bare ``RuntimeError: NetCDF: HDF error`` and Zarr
as ``OSError(ENOSPC)``; both must become the same ClimatuneError.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from climatune.cli import main
from tests.reliability.conftest import leftovers, tmpfs


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs mounted on a fresh directory, unmounted afterwards."""
    with tmpfs(tmp_path / "disk", "") as mnt:
        yield mnt


def _fails_cleanly(argv: list[str], capsys) -> str:
    capsys.readouterr()
    rc = main(argv)
    _, err = capsys.readouterr()
    assert rc == 2, err
    assert err.startswith("climatune: error: no space left on the device while writing"), err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_synthetic_store_on_a_full_disk(tiny_disk, capsys):
    out = tiny_disk / "synth.zarr"
    err = _fails_cleanly(
        ["data", "synth", "--out", str(out), "--years", "4", "--grid", "16x32"], capsys
    )
    assert str(out) in err
    assert sorted(os.listdir(tiny_disk)) == []  # no store, no .synth.zarr.tmp-PID


def test_predictions_on_a_full_disk_leave_the_old_file_alone(tiny_disk, shared, capsys):
    old = tiny_disk / "old.nc"
    old.write_bytes(b"an earlier prediction")
    out = tiny_disk / "pred.nc"  # a new name: predict never replaces an existing file
    _fails_cleanly(
        ["predict", str(shared["model"]), "--input", str(shared["archive"]), "--output", str(out)],
        capsys,
    )
    assert sorted(os.listdir(tiny_disk)) == ["old.nc"] and leftovers(tiny_disk) == []
    assert old.read_bytes() == b"an earlier prediction"


def test_a_full_disk_is_not_blamed_for_other_errors(tmp_path):
    """Plenty of space: a failing write keeps its own error and still leaves nothing."""
    from climatune.utils.atomic import atomic_path

    with pytest.raises(RuntimeError, match="NetCDF: HDF error"):
        with atomic_path(tmp_path / "x.nc") as tmp:
            Path(tmp).write_text("half")
            raise RuntimeError("NetCDF: HDF error")
    assert os.listdir(tmp_path) == []
