"""Atomic outputs: write under a temporary sibling name, then rename into place.

A command killed half way leaves only ``.NAME.tmp-PID`` behind, never a half-written
file under its final name; the next write of the same name cleans such leftovers up.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from climatune.errors import ClimatuneError

__all__ = ["atomic_path", "prepare_output_dir", "clean_stale"]

_TMP_TAG = ".tmp-"
_FULL_BYTES = 1 << 20  # a write that fails with less than this left is taken as a full disk


def _tmp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}{_TMP_TAG}{os.getpid()}")


def clean_stale(final: Path) -> None:
    """Remove temporary leftovers of earlier, interrupted writes of ``final``."""
    parent = final.parent
    if not parent.is_dir():
        return
    for stale in parent.glob(f".{final.name}{_TMP_TAG}*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_path(final: str | Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``final`` if the block succeeds.

    Works for files and directories (a Zarr store, a model directory). On any error the
    temporary path is removed and ``final`` is left as it was. A full disk becomes a
    :class:`ClimatuneError`.
    """
    final = Path(final)
    parent = final.parent
    if parent.exists() and not parent.is_dir():
        raise ClimatuneError(f"cannot write {final}: {parent} is a file, not a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ClimatuneError(
            f"cannot create {parent}: {exc.strerror}; choose another path"
        ) from exc
    if not os.access(parent, os.W_OK):
        raise ClimatuneError(f"cannot write to {parent}: permission denied; choose another path")
    if final.exists() and not overwrite:
        raise ClimatuneError(f"{final} exists; remove it or choose another path")
    clean_stale(final)
    tmp = _tmp_name(final)
    try:
        yield tmp
        if final.exists() and (final.is_dir() or tmp.is_dir()):
            _remove(final)  # os.replace swaps a file in atomically, but not a directory
        os.replace(tmp, final)
    except BaseException as exc:
        full = isinstance(exc, Exception) and _disk_full(exc, parent)  # before tmp frees space
        _remove(tmp)
        if full:
            raise ClimatuneError(
                f"no space left on the device while writing {final}; free space or choose another path"
            ) from exc
        raise


def _disk_full(exc: BaseException, parent: Path) -> bool:
    """Whether a failed write ran out of space.

    ENOSPC anywhere in the exception chain, or an I/O library error with the device now
    (almost) full: netCDF4 reports a full disk only as ``RuntimeError: NetCDF: HDF error``.
    """
    if isinstance(exc, ClimatuneError):
        return False
    seen: BaseException | None = exc
    for _ in range(16):  # the chain, with a bound in case it loops
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    if not isinstance(exc, (OSError, RuntimeError)):
        return False
    try:
        st = os.statvfs(parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < _FULL_BYTES


def prepare_output_dir(out: str | Path, *, create: bool = True) -> Path:
    """Check that ``out`` can be a directory we write into, and create it.

    With ``create=False`` only check, so that a command can validate its inputs before
    it leaves anything (even an empty directory) behind.

    Raises
    ------
    ClimatuneError
        If ``out`` is an existing file or cannot be created.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ClimatuneError(f"--out {out} is a file; give a directory path")
    if not create:
        base = next(p for p in (out, *out.absolute().parents) if p.exists())
        if not base.is_dir():
            raise ClimatuneError(
                f"cannot create --out {out}: {base} is a file; choose another path"
            )
        if not os.access(base, os.W_OK):
            raise ClimatuneError(
                f"cannot write to --out {out}: permission denied; choose another path"
            )
        return out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ClimatuneError(
            f"cannot create --out {out}: {exc.strerror}; choose another path"
        ) from exc
    if not os.access(out, os.W_OK):
        raise ClimatuneError(f"cannot write to --out {out}: permission denied; choose another path")
    return out
