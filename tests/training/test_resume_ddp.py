"""Crash and resume, and two-process DDP on the CPU (gloo)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from climatune import load_model
from climatune.testing import tiny_archive
from climatune.training.callbacks import weights_digest

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, archive: Path, epochs: int) -> Path:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        f"""seed: 3
data:
  path: {archive}
  variables: [tas, sst]
  split: {{train: [2000, 2011], val: [2012, 2012], test: [2013, 2013]}}
  batch_size: 4
model: {{width: 8, depth: 1}}
trainer: {{max_epochs: {epochs}, patience: 50, progress_bar: false, log_every_n_steps: 1}}
"""
    )
    return cfg


def _climatune(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "climatune", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path):
    archive = tiny_archive(tmp_path / "a.nc", ntime=14 * 12)
    cfg = _config(tmp_path, archive, epochs=4)
    whole = _climatune("pretrain", "--config", str(cfg), "--out", str(tmp_path / "whole"))
    assert whole.wait(timeout=600) == 0, whole.stdout.read()

    crashed = tmp_path / "crashed"
    proc = _climatune("pretrain", "--config", str(cfg), "--out", str(crashed))
    metrics = crashed / "logs" / "metrics.csv"
    deadline = time.time() + 300
    # wait until epoch 0 has ended (last.ckpt exists) and a few steps of epoch 1 are logged
    while time.time() < deadline and proc.poll() is None:
        if (crashed / "checkpoints" / "last.ckpt").exists() and metrics.exists():
            rows = [r for r in metrics.read_text().splitlines()[1:] if r.split(",")[0] == "1"]
            if len(rows) >= 2:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (crashed / "model").exists()

    resumed = _climatune("pretrain", "--config", str(cfg), "--resume", str(crashed))
    assert resumed.wait(timeout=600) == 0, resumed.stdout.read()
    assert weights_digest(load_model(crashed).net) == weights_digest(
        load_model(tmp_path / "whole").net
    )


@pytest.mark.slow
def test_two_process_ddp_sees_disjoint_samples_and_ends_identical(tmp_path):
    archive = tiny_archive(tmp_path / "a.nc", ntime=14 * 12)
    cfg = _config(tmp_path, archive, epochs=2)
    run = tmp_path / "ddp"
    proc = _climatune(
        "pretrain",
        "--config",
        str(cfg),
        "--out",
        str(run),
        "--set",
        "trainer.strategy=ddp",
        "--set",
        "trainer.devices=2",
        "--set",
        "trainer.accelerator=cpu",
        "--set",
        "trainer.record_samples=true",
    )
    assert proc.wait(timeout=600) == 0, proc.stdout.read()
    ledgers = [json.loads((run / "logs" / f"ledger-rank{r}.json").read_text()) for r in (0, 1)]
    assert all(led["world_size"] == 2 for led in ledgers)
    n_train = 12 * 12 - 1  # monthly 2000-2011, history 1, lead 1
    per_epoch = len(ledgers[0]["anchors"]) // 2
    assert per_epoch == (n_train + 1) // 2
    for epoch in range(2):
        a = set(ledgers[0]["anchors"][epoch * per_epoch : (epoch + 1) * per_epoch])
        b = set(ledgers[1]["anchors"][epoch * per_epoch : (epoch + 1) * per_epoch])
        assert len(a | b) == n_train
        assert len(a & b) <= 1  # DistributedSampler pads an odd count with one repeat
    assert ledgers[0]["weights"] == ledgers[1]["weights"]
    assert (run / "model" / "weights.safetensors").exists()
