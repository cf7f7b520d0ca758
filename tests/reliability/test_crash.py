"""Crash and resume: SIGKILL every long-running or writing command, then run it again.

``pretrain`` is covered by ``tests/training/test_resume_ddp.py`` (killed mid-epoch, then
``--resume`` reaches the weights of an uninterrupted run). Here: ``finetune`` likewise;
``tune`` (the study survives and keeps counting); ``curve`` (no ``curve.json`` until it is
complete); and ``predict`` and ``data synth`` killed while their output exists only under
its temporary name (``.NAME.tmp-PID``), which the next run removes.

The process to kill runs as ``python -m climatune``; the runs that follow run in-process
through ``climatune.cli.main``, the same code path, to keep the tests short.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import xarray as xr
import yaml

from climatune import load_model
from climatune.cli import main
from climatune.training.callbacks import weights_digest
from climatune.utils.atomic import LOCK
from tests.reliability.conftest import base_config, climatune, leftovers, write_config

pytestmark = pytest.mark.slow


def _wait_for(proc, ready: Callable[[], bool], log: Path, timeout: float = 300) -> None:
    """Poll until ``ready()``; fail if the process ends first or the time runs out."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"the process ended (rc {proc.returncode}) before it could be killed:\n{log.read_text()[-3000:]}"
            )
        if ready():
            return
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"timed out waiting for the process:\n{log.read_text()[-3000:]}")


def _kill(proc) -> None:
    assert proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_finetune_killed_mid_run_resumes_to_the_uninterrupted_weights(shared, tmp_path):
    cfg = write_config(
        tmp_path / "ft.yaml",
        base_config(shared["archive"]),
        "seed=3",
        "data.batch_size=4",
        "trainer.max_epochs=3",
        "trainer.patience=50",
        "trainer.record_samples=true",  # logs/ledger-rank0.json: the samples this process trained on
    )
    args = ["finetune", "--config", str(cfg), "--from", str(shared["model"])]
    crashed, log = tmp_path / "crashed", tmp_path / "crashed.log"
    proc = climatune(*args, "--out", str(crashed), log=log)
    _wait_for(proc, lambda: (crashed / "checkpoints" / "last.ckpt").exists(), log)  # epoch 0 done
    _kill(proc)
    assert not (crashed / "model").exists()

    # Both runs in fresh processes, like the killed one: in-process state left by other
    # tests (threads, deterministic flags) must not enter a bit-for-bit comparison.
    for extra, name in (
        (["--resume", str(crashed)], "resume"),
        (["--out", str(tmp_path / "whole")], "whole"),
    ):
        child = climatune(*args, *extra, log=tmp_path / f"{name}.log")
        assert child.wait(timeout=900) == 0, (tmp_path / f"{name}.log").read_text()[-2000:]
    resumed, whole = load_model(crashed), load_model(tmp_path / "whole")
    assert weights_digest(resumed.net) == weights_digest(whole.net)
    assert resumed.meta.data["parent"] == whole.meta.data["parent"]

    def trained(run: Path) -> int:
        return len(json.loads((run / "logs" / "ledger-rank0.json").read_text())["anchors"])

    assert 0 < trained(crashed) < trained(tmp_path / "whole")  # it resumed, it did not start over


def _check_tune_outputs(out: Path) -> list[dict[str, str]]:
    """Whatever tune left under its final names parses completely."""
    rows = []
    if (out / "trials.csv").exists():
        rows = list(csv.DictReader((out / "trials.csv").open()))
        assert all(r["state"] in {s.name for s in optuna.trial.TrialState} for r in rows)
    if (out / "best.json").exists():
        json.loads((out / "best.json").read_text())
    if (out / "best.yaml").exists():
        assert isinstance(yaml.safe_load((out / "best.yaml").read_text()), dict)
    return rows


def test_tune_killed_mid_study_resumes_and_keeps_counting(shared, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n")
    out, log = tmp_path / "tune", tmp_path / "tune.log"
    config = write_config(
        tmp_path / "cfg.yaml", base_config(shared["archive"]), "trainer.limit_train_batches=2"
    )
    args = [
        "tune",
        "--config",
        str(config),
        "--space",
        str(space),
        "--folds",
        "2",
        "--out",
        str(out),
    ]

    def one_complete() -> bool:
        try:
            return any(r["state"] == "COMPLETE" for r in _check_tune_outputs(out))
        except (OSError, KeyError):
            return False

    proc = climatune(*args, "--trials", "3", log=log)
    _wait_for(proc, one_complete, log)
    _kill(proc)
    _check_tune_outputs(out)
    storage = f"sqlite:///{out / 'study.db'}"
    before = optuna.load_study(study_name="climatune", storage=storage).get_trials(deepcopy=False)
    complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in before)
    assert complete >= 1

    assert main([*args, "--trials", "1"]) == 0
    after = optuna.load_study(study_name="climatune", storage=storage).get_trials(deepcopy=False)
    assert len(after) == len(before) + 1
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in after) == complete + 1
    # the trial the kill interrupted is never counted as complete: optuna leaves it RUNNING
    # until its heartbeat is older than the grace period, then marks it FAIL
    for old, new in zip(before, after):
        if old.state == optuna.trial.TrialState.RUNNING:
            assert new.state in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.FAIL)
    rows = _check_tune_outputs(out)
    assert len(rows) == len(after)
    assert json.loads((out / "best.json").read_text())["trials"]["complete"] == complete + 1
    assert leftovers(out) == []


def test_curve_killed_leaves_no_curve_json_and_reruns(shared, tmp_path):
    out, log = tmp_path / "curve", tmp_path / "curve.log"
    config = write_config(
        tmp_path / "cfg.yaml", base_config(shared["archive"]), "trainer.limit_train_batches=2"
    )
    args = [
        "curve",
        "--config",
        str(config),
        "--from",
        str(shared["model"]),
        "--fractions",
        "1",
        "--out",
        str(out),
    ]
    proc = climatune(*args, log=log)
    _wait_for(proc, lambda: (out / "fraction-1" / "finetuned" / "config.yaml").exists(), log)
    _kill(proc)
    assert not (out / "curve.json").exists() and not (out / "curve.png").exists()

    assert main(args) == 2  # the killed run's folder is not silently reused
    assert main([*args, "--overwrite"]) == 0  # its lock is stale: the process is gone
    assert not (out / LOCK).exists()
    rows = json.loads((out / "curve.json").read_text())
    assert {r["model"] for r in rows} == {"finetuned", "scratch"} and {
        r["fraction"] for r in rows
    } == {1.0}
    assert leftovers(out) == []


def _killed_while_writing(proc, final: Path, log: Path, ready: Callable[[], bool]) -> None:
    """Kill ``proc`` once ``ready()``; then only its ``.NAME.tmp-PID`` may exist, not ``final``."""
    _wait_for(proc, ready, log)
    _kill(proc)
    assert not final.exists()
    assert sorted(os.listdir(final.parent)) == [f".{final.name}.tmp-{proc.pid}"]


def test_predict_killed_before_its_rename_leaves_only_a_temporary_file(shared, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    final, ready, log = out / "pred.nc", tmp_path / "ready", tmp_path / "predict.log"
    args = [
        "predict",
        str(shared["model"]),
        "--input",
        str(shared["archive"]),
        "--output",
        str(final),
    ]
    proc = climatune(
        *args,
        module="tests.reliability._stall",
        log=log,
        env={"CLIMATUNE_STALL_ON": final.name, "CLIMATUNE_STALL_READY": str(ready)},
    )
    _killed_while_writing(proc, final, log, ready.exists)

    assert main(args) == 0
    assert sorted(os.listdir(out)) == ["pred.nc"]
    with xr.open_dataset(final) as ds:
        assert {"tas", "sst"} <= set(ds.data_vars)


def test_synth_killed_while_writing_leaves_only_a_temporary_store(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    final, log = out / "synth.zarr", tmp_path / "synth.log"
    proc = climatune(
        "data", "synth", "--out", str(final), "--years", "40", "--grid", "64x128", log=log
    )
    tas = out / f".synth.zarr.tmp-{proc.pid}" / "tas"

    def some_chunks_written() -> bool:
        return tas.is_dir() and any(not p.name.startswith(".") for p in tas.iterdir())

    _killed_while_writing(proc, final, log, some_chunks_written)

    assert main(["data", "synth", "--out", str(final), "--years", "1", "--grid", "8x16"]) == 0
    assert sorted(os.listdir(out)) == ["synth.zarr"]
    with xr.open_zarr(final) as ds:
        assert ds.sizes["time"] == 12
