"""The machine says no: a full disk, a read-only folder, a forbidden path, a name too long.

Every command ends with one ``climatune: error:`` line naming the path and the reason, exit
code 2, and leaves nothing half-written: no ``.tmp`` files, no half run folder, no half
artifact, the user's files as they were and the lock released. Most cases inject the
error at the write sites (atomic writes, torch.save through Lightning's checkpoint IO,
xarray, safetensors, the loggers, SQLite); the rest are real (a name over 255 bytes, a
read-only mount).
"""

from __future__ import annotations

import errno
import os
import shutil

import pytest
import xarray as xr
from lightning.fabric.loggers.csv_logs import _ExperimentWriter
from lightning.fabric.loggers.tensorboard import TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

import climatune.inference.artifact
import climatune.utils.atomic
from climatune.cli import main
from climatune.utils.atomic import LOCK
from tests.reliability.conftest import leftovers, tmpfs, tree

LONG = "n" * 300  # over the 255 bytes a file name may have


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _fails(argv: list[str], capsys, *names: str, reason: str = "no space left") -> str:
    """Run the CLI; it must exit 2 with one error line that names ``names`` and ``reason``."""
    capsys.readouterr()
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, err
    line = err.splitlines()[-1]  # after what the command said while it worked
    assert line.startswith("climatune: error: ") and err.count("climatune: error:") == 1, err
    assert "Traceback" not in err + out
    for name in (reason, *names):
        assert name in line, err
    return line


def _train_args(shared, out) -> list[str]:
    return ["pretrain", "--config", str(shared["config"]), "--out", str(out)]


@pytest.mark.parametrize(
    "site",
    ["checkpoint", "weights", "csv", "tensorboard", "atomic"],
)
def test_pretrain_that_cannot_write_leaves_no_run(site, shared, tmp_path, capsys, monkeypatch):
    targets = {
        "checkpoint": (TorchCheckpointIO, "save_checkpoint"),
        "weights": (climatune.inference.artifact, "save_file"),
        "csv": (_ExperimentWriter, "save"),
        "tensorboard": (TensorBoardLogger, "log_metrics"),
        "atomic": (climatune.utils.atomic.os, "replace"),
    }
    monkeypatch.setattr(*targets[site], _no_space)
    out = tmp_path / "run"
    _fails(_train_args(shared, out), capsys, str(out))
    assert os.listdir(tmp_path) == []  # no run folder, no lock, no temporary file


def test_a_folder_the_user_made_stays_empty(shared, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", _no_space)
    _fails(_train_args(shared, out), capsys, str(out))
    assert os.listdir(out) == []


def test_a_resumed_run_keeps_what_it_had(shared, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(shared["model"], run)
    before = tree(run / "checkpoints")
    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", _no_space)
    argv = ["pretrain", "--config", str(shared["config"]), "--resume", str(run)]
    argv += ["--set", "trainer.max_epochs=2"]
    _fails(argv, capsys, str(run))
    assert tree(run / "checkpoints") == before  # the last good checkpoint, unchanged
    assert not (run / LOCK).exists() and leftovers(run) == []


def test_finetune_on_a_full_disk(shared, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(climatune.inference.artifact, "save_file", _no_space)
    out = tmp_path / "ft"
    argv = ["finetune", "--config", str(shared["config"]), "--from", str(shared["model"])]
    _fails([*argv, "--out", str(out)], capsys, str(out))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("command", ["evaluate", "explain"])
def test_scoring_commands_on_a_full_disk(command, shared, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(climatune.utils.atomic.os, "replace", _no_space)
    out = tmp_path / command
    argv = [command, str(shared["model"] / "model"), "--out", str(out), "--device", "cpu"]
    extra = {"evaluate": ["--baselines", "none"], "explain": ["--samples", "2"]}
    _fails([*argv, *extra[command]], capsys, str(out))
    assert os.listdir(tmp_path) == []


def test_predict_netcdf_write_on_a_full_disk(shared, tmp_path, capsys, monkeypatch):
    old = tmp_path / "old.nc"
    old.write_bytes(b"an earlier prediction")
    monkeypatch.setattr(xr.Dataset, "to_netcdf", _no_space)
    out = tmp_path / "pred.nc"
    argv = ["predict", str(shared["model"]), "--input", str(shared["archive"])]
    _fails([*argv, "--output", str(out)], capsys, str(out))
    assert os.listdir(tmp_path) == ["old.nc"]
    assert old.read_bytes() == b"an earlier prediction"


def test_synthetic_store_on_a_full_disk(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(xr.Dataset, "to_zarr", _no_space)
    out = tmp_path / "s.zarr"
    _fails(["data", "synth", "--out", str(out), "--years", "1", "--grid", "8x16"], capsys, str(out))
    assert os.listdir(tmp_path) == []


def test_report_keeps_the_old_report(shared, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(shared["model"], run)
    assert main(["report", str(run)]) == 0
    before = tree(run)
    monkeypatch.setattr(climatune.utils.atomic.os, "replace", _no_space)
    _fails(["report", str(run)], capsys, "report.html")
    assert tree(run) == before


def test_tune_on_a_full_disk(shared, tmp_path, capsys, monkeypatch):
    space = tmp_path / "space.yaml"
    space.write_text("optim.lr: {type: float, low: 0.0001, high: 0.01, log: true}\n")
    monkeypatch.setattr(climatune.utils.atomic.os, "replace", _no_space)
    out = tmp_path / "tune"
    argv = ["tune", "--config", str(shared["config"]), "--space", str(space), "--out", str(out)]
    _fails([*argv, "--trials", "1", "--folds", "2"], capsys, str(out))
    assert leftovers(tmp_path) == []


def test_tune_sqlite_on_a_full_disk(shared, tmp_path, capsys, monkeypatch):
    import sqlite3

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    import optuna

    monkeypatch.setattr(optuna.storages.RDBStorage, "create_new_study", full)
    space = tmp_path / "space.yaml"
    space.write_text("optim.lr: {type: float, low: 0.0001, high: 0.01, log: true}\n")
    out = tmp_path / "tune"
    argv = ["tune", "--config", str(shared["config"]), "--space", str(space), "--out", str(out)]
    _fails([*argv, "--trials", "1", "--folds", "2"], capsys, "study.db")


def test_names_too_long(shared, tmp_path, capsys):
    synth = ["data", "synth", "--years", "1", "--grid", "8x16"]
    _fails([*synth, "--out", str(tmp_path / f"{LONG}.zarr")], capsys, reason="too long")
    argv = ["predict", str(shared["model"]), "--input", str(shared["archive"])]
    _fails([*argv, "--output", str(tmp_path / f"{LONG}.nc")], capsys, reason="too long")
    _fails(_train_args(shared, tmp_path / LONG), capsys, reason="too long")
    assert os.listdir(tmp_path) == []


@pytest.fixture
def read_only(tmp_path):
    """A read-only tmpfs (needs root to mount; skipped elsewhere), unmounted afterwards."""
    with tmpfs(tmp_path / "ro", "ro") as mnt:
        yield mnt


def test_read_only_folder(read_only, shared, capsys):
    synth = ["data", "synth", "--years", "1", "--grid", "8x16"]
    _fails([*synth, "--out", str(read_only / "s.zarr")], capsys, reason="read-only")
    argv = ["predict", str(shared["model"]), "--input", str(shared["archive"])]
    _fails([*argv, "--output", str(read_only / "p.nc")], capsys, reason="read-only")
    _fails(_train_args(shared, read_only / "run"), capsys, reason="read-only")
    assert os.listdir(read_only) == []
