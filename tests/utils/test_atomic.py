"""Output folders: stamped, locked while written, replaced only when the same command wrote them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from climatune.errors import ClimatuneError
from climatune.utils.atomic import LOCK, STAMP, prepare_output_dir, releases_outputs


def _stamped(path: Path, command: str, *files: str) -> Path:
    path.mkdir(parents=True)
    (path / STAMP).write_text(json.dumps({"command": command}))
    for name in files:
        (path / name).write_text("old")
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@releases_outputs
def _claim(out: Path, **kw) -> tuple[str, list[str]]:
    """Claim ``out`` as a command would; return the lock's text and the folder's entries."""
    prepare_output_dir(out, **kw)
    return (out / LOCK).read_text(), sorted(p.name for p in out.iterdir())


def test_a_new_folder_is_stamped_and_locked_while_the_command_runs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    lock, entries = _claim(out, command="pretrain")
    assert lock == f"{os.getpid()} {socket.gethostname()}\n"
    assert entries == sorted([LOCK, STAMP])
    assert json.loads((out / STAMP).read_text())["command"] == "pretrain"
    assert not (out / LOCK).exists()  # released when the command returned


def test_the_lock_is_released_when_the_command_fails(tmp_path: Path) -> None:
    @releases_outputs
    def failing() -> None:
        prepare_output_dir(tmp_path / "run", command="pretrain")
        raise ClimatuneError("bad data")

    with pytest.raises(ClimatuneError):
        failing()
    assert not (tmp_path / "run" / LOCK).exists()


def test_overwrite_replaces_only_the_same_commands_folder(tmp_path: Path) -> None:
    out = _stamped(tmp_path / "ev", "evaluate", "metrics.json", "map_old.png")
    _, entries = _claim(out, command="evaluate", overwrite=True)
    assert entries == sorted([LOCK, STAMP])  # the earlier outputs are gone
    other = _stamped(tmp_path / "pre", "pretrain", "config.yaml")
    with pytest.raises(ClimatuneError, match="written by `climatune pretrain`"):
        _claim(other, command="evaluate", overwrite=True)
    assert (other / "config.yaml").read_text() == "old"


def test_resume_keeps_the_runs_files(tmp_path: Path) -> None:
    out = _stamped(tmp_path / "run", "pretrain", "config.yaml")
    _, entries = _claim(out, command="pretrain", resume=True)
    assert entries == sorted([LOCK, STAMP, "config.yaml"])
    assert (out / "config.yaml").read_text() == "old"


def test_a_stale_lock_is_taken_over(tmp_path: Path) -> None:
    out = _stamped(tmp_path / "run", "pretrain", "config.yaml")
    (out / LOCK).write_text(f"{_dead_pid()} {socket.gethostname()}\n")  # a crashed run's lock
    lock, _ = _claim(out, command="pretrain", resume=True)
    assert lock.split()[0] == str(os.getpid())
    assert not (out / LOCK).exists()


def test_a_live_lock_on_another_host_is_respected(tmp_path: Path) -> None:
    out = _stamped(tmp_path / "run", "pretrain", "config.yaml")
    (out / LOCK).write_text(f"{_dead_pid()} some-other-node\n")  # its PID cannot be checked here
    with pytest.raises(ClimatuneError, match="on some-other-node"):
        _claim(out, command="pretrain", resume=True)
    assert (out / LOCK).read_text().endswith("some-other-node\n")


def test_a_step_may_write_into_its_commands_own_folder(tmp_path: Path) -> None:
    """The demo runs the curve into its own (non-empty) folder, next to the runs it reads."""

    @releases_outputs
    def demo() -> list[str]:
        out = prepare_output_dir(tmp_path / "demo", command="demo")
        (out / "pretrain").mkdir()
        prepare_output_dir(out, command="curve", inputs=[out / "pretrain"])
        step = prepare_output_dir(out / "fraction-1" / "scratch", command="scratch")
        return sorted(p.name for p in step.iterdir())

    assert demo() == [STAMP]  # stamped, not locked: the demo's lock covers it
    with pytest.raises(ClimatuneError, match="pass --overwrite"):
        _claim(tmp_path / "demo", command="demo")  # once the demo is done, it is checked again


def test_other_ranks_of_a_ddp_launch_write_into_the_folder_rank_0_claimed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _stamped(tmp_path / "run", "pretrain", "config.yaml")
    (out / LOCK).write_text(f"{os.getpid()} {socket.gethostname()}\n")  # held by rank 0
    before = sorted(p.name for p in out.iterdir())
    monkeypatch.setenv("LOCAL_RANK", "1")  # what Lightning's launcher gives rank 1
    assert prepare_output_dir(out, command="pretrain") == out
    assert sorted(p.name for p in out.iterdir()) == before
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(ClimatuneError, match="pass --overwrite"):
        prepare_output_dir(out, command="pretrain")


def test_a_second_process_is_refused_until_the_first_is_gone(tmp_path: Path) -> None:
    out, ready = tmp_path / "run", tmp_path / "ready"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, pathlib\n"
            "from climatune.utils.atomic import prepare_output_dir\n"
            "prepare_output_dir(sys.argv[1], command='pretrain')\n"
            "pathlib.Path(sys.argv[2]).touch()\n"
            "time.sleep(600)\n",
            str(out),
            str(ready),
        ],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        for _ in range(600):
            if ready.exists() or writer.poll() is not None:
                break
            time.sleep(0.05)
        assert ready.exists()
        with pytest.raises(
            ClimatuneError, match=f"another climatune process \\(PID {writer.pid} on"
        ):
            _claim(out, command="pretrain", overwrite=True)
        assert (out / LOCK).read_text().split()[0] == str(writer.pid)
    finally:
        writer.kill()  # a crash: its lock stays behind, stale
        writer.wait()
    assert (out / LOCK).exists()
    lock, entries = _claim(out, command="pretrain", overwrite=True)
    assert lock.split()[0] == str(os.getpid()) and entries == sorted([LOCK, STAMP])


def test_a_training_run_from_before_the_stamps_can_be_resumed(tmp_path: Path) -> None:
    out = tmp_path / "old"
    (out / "checkpoints").mkdir(parents=True)
    (out / "config.yaml").write_text("seed: 0\n")
    (out / "checkpoints" / "last.ckpt").write_bytes(b"ckpt")
    _, entries = _claim(out, command="pretrain", resume=True)
    assert {"config.yaml", "checkpoints", STAMP} <= set(entries)
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    with pytest.raises(ClimatuneError, match="no stamp"):  # any other unstamped folder is not
        _claim(user, command="pretrain", resume=True)
    assert sorted(p.name for p in user.iterdir()) == ["notes.txt"]


def test_a_user_error_after_the_claim_leaves_no_empty_folder(tmp_path: Path) -> None:
    """evaluate found a grid mismatch only after claiming --out: the folder it created,
    holding only its stamp, refused the corrected rerun. It goes; one with outputs stays."""

    @releases_outputs
    def failing(out: Path, write: bool) -> None:
        prepare_output_dir(out, command="evaluate")
        if write:
            (out / "metrics.json").write_text("{}")
        raise ClimatuneError("the climatology was fitted on another grid")

    with pytest.raises(ClimatuneError):
        failing(tmp_path / "ev", False)
    assert not (tmp_path / "ev").exists()
    _claim(tmp_path / "ev", command="evaluate")  # the rerun needs no --overwrite
    with pytest.raises(ClimatuneError):
        failing(tmp_path / "ev2", True)
    assert sorted(p.name for p in (tmp_path / "ev2").iterdir()) == sorted(["metrics.json", STAMP])
