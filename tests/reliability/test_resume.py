"""Resume loses nothing: a run killed (SIGKILL), stopped by a scheduler (SIGTERM) or by
Ctrl-C (SIGINT) and then resumed ends like an uninterrupted one, with every epoch in its
logs once; a config that would train something else is refused.

The interrupted processes run ``python -m tests.reliability._die``: the real CLI, which
signals itself after the first batch of the epoch following ``$CLIMATUNE_DIE_AFTER_EPOCH``.
"""

from __future__ import annotations

import csv
import shlex
import shutil
import signal
from pathlib import Path

import pytest
import torch

from climatune import load_model
from climatune.cli import main
from climatune.config import load_config
from climatune.testing import tiny_config
from climatune.training.callbacks import weights_digest
from climatune.utils.atomic import LOCK
from tests.reliability.conftest import base_config, climatune, tree, write_config

pytestmark = pytest.mark.slow

EPOCHS = ("trainer.max_epochs=3", "trainer.patience=50", "seed=3", "data.batch_size=8")


def _run(args: list[str], log: Path, *, die: tuple[int, str] | None = None) -> int:
    """Run the CLI in a fresh process; with ``die=(epoch, signal)``, interrupted after it."""
    env = None
    if die is not None:
        env = {"CLIMATUNE_DIE_AFTER_EPOCH": str(die[0]), "CLIMATUNE_DIE_SIGNAL": die[1]}
    module = "tests.reliability._die" if die else "climatune"
    return climatune(*args, log=log, module=module, env=env).wait(timeout=900)


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "logs" / "metrics.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def _per_epoch(run: Path, key: str) -> list[tuple[int, float]]:
    return [(int(r["epoch"]), float(r[key])) for r in _rows(run) if r.get(key)]


@pytest.fixture(scope="module")
def whole(shared, tmp_path_factory) -> dict[str, Path]:
    """An uninterrupted 3-epoch pretrain run and its config."""
    root = tmp_path_factory.mktemp("whole")
    cfg = write_config(root / "pre.yaml", base_config(shared["archive"]), *EPOCHS)
    assert _run(["pretrain", "--config", str(cfg), "--out", str(root / "run")], root / "log") == 0
    return {"config": cfg, "run": root / "run"}


def test_killed_pretrain_resumes_with_every_epoch_logged_once(whole, tmp_path):
    run, args = tmp_path / "run", ["pretrain", "--config", str(whole["config"])]
    assert _run([*args, "--out", str(run)], tmp_path / "a.log", die=(0, "KILL")) == -9
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0
    assert _run([*args, "--resume", str(run)], tmp_path / "b.log") == 0

    assert weights_digest(load_model(run).net) == weights_digest(load_model(whole["run"]).net)
    for key in ("val_loss", "train_loss_epoch"):
        got, want = _per_epoch(run, key), _per_epoch(whole["run"], key)
        assert [e for e, _ in got] == [0, 1, 2]  # every epoch, once, in order
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)
    steps = [int(r["step"]) for r in _rows(run) if r.get("train_loss_step")]
    assert steps == [int(r["step"]) for r in _rows(whole["run"]) if r.get("train_loss_step")]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def tb_steps(run: Path) -> dict[str, list[int]]:
        events = EventAccumulator(str(run / "logs" / "tb")).Reload()
        return {tag: [e.step for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}

    assert "train_loss_step" in tb_steps(run)
    assert tb_steps(run) == tb_steps(whole["run"])  # the interrupted epoch's events dropped


@pytest.mark.parametrize(("name", "code"), [("TERM", 143), ("INT", 130)])
def test_sigterm_and_ctrl_c_save_a_checkpoint_and_say_how_to_resume(whole, tmp_path, name, code):
    run, log = tmp_path / "run", tmp_path / "a.log"
    args = ["pretrain", "--config", str(whole["config"])]
    assert _run([*args, "--out", str(run)], log, die=(0, name)) == code
    last = run / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 0  # the last completed epoch
    assert not (run / LOCK).exists() and not (run / "model").exists()
    line = log.read_text().strip().splitlines()[-1]
    assert line.startswith(f"climatune: interrupted by SIG{name}; {last} holds the last")
    hint = line.split("resume with: ")[1]
    assert shlex.split(hint) == ["climatune", *args, "--resume", str(run)]

    assert _run(shlex.split(hint)[1:], tmp_path / "b.log") == 0
    assert weights_digest(load_model(run).net) == weights_digest(load_model(whole["run"]).net)
    assert [e for e, _ in _per_epoch(run, "val_loss")] == [0, 1, 2]


@pytest.mark.parametrize(
    ("sets", "keys"),
    [
        (["model.width=16"], "model.width (8 -> 16)"),
        (["data.variables=[tas]"], "data.variables (['tas', 'sst'] -> ['tas'])"),
        (
            ["task.kind=reconstruct", "task.lead=2"],
            "task.kind ('forecast' -> 'reconstruct'), task.lead (1 -> 2)",
        ),
    ],
)
def test_resume_with_another_config_is_refused_before_writing(shared, tmp_path, capsys, sets, keys):
    run = tmp_path / "run"
    shutil.copytree(shared["model"], run)
    before = tree(run)
    cfg = write_config(tmp_path / "other.yaml", base_config(shared["archive"]), *sets)
    assert main(["pretrain", "--config", str(cfg), "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("climatune: error: cannot resume")
    assert f"differs from the one it was started with in {keys};" in err
    assert tree(run) == before


def test_resume_with_fewer_epochs_than_done_is_refused_before_writing(shared, tmp_path, capsys):
    from climatune.workflows.pretraining import pretrain

    run = pretrain(tiny_config(shared["archive"], "trainer.max_epochs=2"), out=tmp_path / "run")
    before = tree(run)
    args = ["pretrain", "--config", str(shared["config"]), "--resume", str(run)]
    assert main(args) == 2  # the config's budget is 1 epoch
    err = capsys.readouterr().err.strip()
    assert err == (
        f"climatune: error: cannot resume {run}: it has trained 2 epochs, more than "
        "trainer.max_epochs=1; set trainer.max_epochs to 2 or more"
    )
    assert tree(run) == before


def test_resume_may_change_the_budget(shared):
    from climatune.workflows.resume import check_resume_config

    budget = load_config(
        shared["config"], ["trainer.max_epochs=7", "trainer.patience=9", "trainer.max_steps=99"]
    )
    check_resume_config(shared["model"], budget)  # no error


def test_ridge_probe_resume_is_refused(shared, tmp_path, capsys):
    cfg = write_config(
        tmp_path / "r.yaml", base_config(shared["archive"]), "finetune.strategy=ridge_probe"
    )
    args = ["finetune", "--config", str(cfg), "--from", str(shared["model"])]
    assert main([*args, "--resume", str(tmp_path / "any")]) == 2
    err = capsys.readouterr().err
    assert "cannot resume a ridge_probe run: its head is solved in one step" in err
    assert not (tmp_path / "any").exists()


@pytest.mark.parametrize(
    ("strategy", "sets", "after"),
    [
        ("gradual", ["finetune.unfreeze_epoch=1"], 1),  # killed after the backbone unfroze
        ("lora", [], 0),
        ("partial", ["finetune.freeze_stages=1"], 0),
        ("linear_probe", [], 0),
    ],
)
def test_every_strategy_resumes_to_the_uninterrupted_weights(
    shared, tmp_path, strategy, sets, after
):
    cfg = write_config(
        tmp_path / "ft.yaml",
        base_config(shared["archive"]),
        *EPOCHS,
        f"finetune.strategy={strategy}",
        *sets,
    )
    args = ["finetune", "--config", str(cfg), "--from", str(shared["model"])]
    run = tmp_path / "run"
    assert _run([*args, "--out", str(run)], tmp_path / "a.log", die=(after, "KILL")) == -9
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == after
    assert _run([*args, "--resume", str(run)], tmp_path / "b.log") == 0, (
        tmp_path / "b.log"
    ).read_text()[-2000:]
    assert _run([*args, "--out", str(tmp_path / "whole")], tmp_path / "c.log") == 0
    assert weights_digest(load_model(run).net) == weights_digest(load_model(tmp_path / "whole").net)
    assert [e for e, _ in _per_epoch(run, "val_loss")] == [0, 1, 2]


@pytest.mark.parametrize("slurm", [False, True])
def test_signal_handlers_leave_slurm_to_lightning(monkeypatch, tmp_path, slurm):
    from climatune.training.resume import StopOnSignal, interruptible

    for name in ("SLURM_NTASKS", "SLURM_JOB_NAME"):
        monkeypatch.delenv(name, raising=False)
    if slurm:  # what SLURMEnvironment.detect() reads: Lightning's auto-requeue stays in charge
        monkeypatch.setenv("SLURM_NTASKS", "1")
        monkeypatch.setenv("SLURM_JOB_NAME", "train")
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with interruptible(StopOnSignal(), tmp_path):
        during = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    assert (during == before) is slurm
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
