"""Shared inputs for the reliability tests: one tiny archive and one pretrained model.

Both are built once per session (the model trains for one epoch, width 8, depth 1) and
are read-only for the tests; a test that needs to write into a run copies it first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from climatune.config import apply_overrides
from climatune.testing import tiny_archive, tiny_config

ROOT = Path(__file__).resolve().parents[2]
BASE_SETS = ("trainer.max_epochs=1",)


def base_config(archive: Path, *sets: str) -> dict:
    """The tiny training config for ``archive`` as a plain mapping, with ``sets`` applied."""
    return tiny_config(archive, *BASE_SETS, *sets).model_dump(mode="json")


def write_config(path: Path, raw: dict, *sets: str) -> Path:
    """``raw`` with dotted ``sets`` (``key=value``) applied, written as YAML to ``path``."""
    path.write_text(yaml.safe_dump(apply_overrides(raw, list(sets)), sort_keys=False))
    return path


@pytest.fixture(scope="session")
def shared(tmp_path_factory) -> dict[str, Path]:
    """``archive`` (tiny.nc), ``model`` (a pretrained run dir) and ``config`` (its YAML)."""
    root = tmp_path_factory.mktemp("reliability")
    archive = tiny_archive(root / "tiny.nc")
    from climatune.workflows.pretraining import pretrain

    run = pretrain(tiny_config(archive, *BASE_SETS), out=root / "pretrained")
    shutil.rmtree(run / "logs")  # keep the shared run small; checkpoints stay for --resume copies
    config = write_config(root / "config.yaml", base_config(archive))
    return {"root": root, "archive": archive, "model": run, "config": config}


def climatune(
    *args: str, log: Path, module: str = "climatune", env: dict | None = None
) -> subprocess.Popen:
    """Start ``python -m climatune ARGS`` (or another ``module``), output going to ``log``."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path, **(env or {})}
    with open(log, "w") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )


def tree(root: Path) -> dict[str, tuple[bool, int, int]]:
    """Every path under ``root`` with (is_dir, size, mtime_ns): a cheap change detector."""
    out = {}
    for path in sorted(Path(root).rglob("*")):
        st = path.lstat()
        out[str(path.relative_to(root))] = (
            path.is_dir(),
            0 if path.is_dir() else st.st_size,
            st.st_mtime_ns,
        )
    return out


def leftovers(root: Path) -> list[str]:
    """Temporary ``.NAME.tmp-PID`` siblings of atomic writes anywhere under ``root``."""
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob(".*.tmp-*"))


@contextmanager
def tmpfs(mnt: Path, options: str) -> Iterator[Path]:
    """A 64 KiB tmpfs mounted on the new directory ``mnt`` with ``options`` (e.g. ``ro``).

    Mounting needs root; the test is skipped where it cannot mount. Unmounted afterwards,
    lazily if a file is still open (netCDF4 keeps a deleted file open after a failed close).
    """
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    opts = ",".join(filter(None, [options, "size=64k"]))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=False)
