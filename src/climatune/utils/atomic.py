"""Safe outputs: atomic writes, and output folders that never swallow the user's files.

A command killed half way leaves only ``.NAME.tmp-PID`` behind, never a half-written
file under its final name; the next write of the same name cleans such leftovers up.

An output folder is claimed by :func:`prepare_output_dir`: it must not be, contain or lie
inside an input; an existing non-empty folder is refused unless it is continued
(``resume``) or replaced (``overwrite``), and both need the stamp (``.climatune-run.json``)
that says the same command wrote it. While a command writes, the folder holds a lock file
(PID and host), so a second process is refused; a lock whose process is gone is taken over.
Command functions wrapped in :func:`releases_outputs` drop their locks when they return;
when they fail for a reason of the machine (a full disk, a read-only folder, a name too
long) they also remove the folders they started, so nothing half-written is left.
"""

from __future__ import annotations

import atexit
import errno
import functools
import json
import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from climatune import __version__
from climatune.errors import ClimatuneError, OutputError, os_error

__all__ = [
    "atomic_path",
    "prepare_output_dir",
    "releases_outputs",
    "check_not_input",
    "check_new_path",
    "other_rank",
    "clean_stale",
    "STAMP",
    "LOCK",
]

_TMP_TAG = ".tmp-"
_FULL_BYTES = 1 << 20  # a write that fails with less than this left is taken as a full disk
STAMP = ".climatune-run.json"  # which command wrote a folder
LOCK = ".climatune.lock"  # "PID HOST" of the process writing a folder now
_SMALL = 4096  # stamps and locks are tiny; never read more of them

_held: set[Path] = set()  # folders whose lock this process holds
_held_guard = threading.Lock()
_started: dict[Path, bool] = {}  # locked folders this process started: {folder: it created it}
_taken: ContextVar[list[Path] | None] = ContextVar("climatune_taken", default=None)
_F = TypeVar("_F", bound=Callable[..., Any])


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
    temporary path is removed and ``final`` is left as it was. A full disk, a read-only or
    forbidden folder and a name too long become an :class:`OutputError`.
    """
    final = Path(final)
    parent = final.parent
    if parent.exists() and not parent.is_dir():
        raise ClimatuneError(f"cannot write {final}: {parent} is a file, not a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {parent}: {exc.strerror}; choose another path") from exc
    _check_writable(parent, final)
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
        error = _write_error(exc, final)  # before tmp frees space
        _remove(tmp)
        if error is None or error is exc:
            raise
        raise error from exc


def _check_writable(folder: Path, path: Path) -> None:
    """Refuse to write ``path`` when ``folder`` (its parent) is read-only or forbidden."""
    if os.access(folder, os.W_OK):
        return
    code = errno.EROFS if os.statvfs(folder).f_flag & os.ST_RDONLY else errno.EACCES
    error = os_error(OSError(code, os.strerror(code)), path=path)
    raise error if error is not None else ClimatuneError(f"cannot write {path}")


def _write_error(exc: BaseException, final: Path) -> OutputError | None:
    """The :class:`OutputError` for a write of ``final`` that failed for a reason of the
    machine, or None.

    An I/O library error with the device now (almost) full is taken as a full disk:
    netCDF4 reports one only as ``RuntimeError: NetCDF: HDF error``.
    """
    if not isinstance(exc, Exception):
        return None
    error = os_error(exc, path=final)
    if error is not None or isinstance(exc, ClimatuneError):
        return error
    if not isinstance(exc, (OSError, RuntimeError)):
        return None
    try:
        st = os.statvfs(final.parent)
    except OSError:
        return None
    if st.f_bavail * st.f_frsize >= _FULL_BYTES:
        return None
    return os_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), path=final)


def _real(path: str | os.PathLike) -> Path:
    """``path`` resolved: absolute, ``..`` and symlinks followed, so spellings compare equal."""
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))


def check_not_input(
    out: str | Path, inputs: Iterable[str | os.PathLike], *, flag: str = "--out"
) -> None:
    """Refuse an output path that is an input, lies inside one or contains one.

    Paths are compared resolved (relative paths, ``..``, symlinks, trailing slashes).
    """
    target = _real(out)
    for item in inputs:
        source = _real(item)
        if target == source:
            where = "is"
        elif source in target.parents:
            where = "lies inside"
        elif target in source.parents:
            where = "contains"
        else:
            continue
        raise ClimatuneError(
            f"{flag} {out} {where} the input {item}; writing there could overwrite or delete "
            "it; choose another path"
        )


def check_new_path(path: str | Path, *, flag: str = "--out") -> Path:
    """Refuse an output file or store that already exists (it may be the user's)."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise ClimatuneError(f"{flag} {path} already exists; remove it or choose another path")
    return path


def _made_by(out: Path) -> str | None:
    """The command recorded in ``out``'s stamp, or None when there is no readable stamp."""
    stamp = out / STAMP
    if stamp.is_symlink() or not stamp.is_file():
        return None
    try:
        with stamp.open("rb") as fh:
            data = json.loads(fh.read(_SMALL))
    except (OSError, ValueError):
        return None
    command = data.get("command") if isinstance(data, dict) else None
    return command if isinstance(command, str) else None


def _unstamped_run(out: Path) -> bool:
    """Whether ``out`` looks like a training run written before runs were stamped."""
    return (out / "config.yaml").is_file() and (out / "checkpoints" / "last.ckpt").is_file()


def _check_reuse(out: Path, command: str, *, overwrite: bool, resume: bool) -> None:
    """Refuse an existing, non-empty ``out`` unless it may be continued or replaced."""
    ours = (LOCK, f".{STAMP}{_TMP_TAG}")  # the lock, a stamp being written
    if not out.is_dir() or all(e.startswith(ours) for e in os.listdir(out)):
        return
    made_by = _made_by(out)
    who = f"`climatune {made_by}`" if made_by else "something other than ClimaTune (no stamp)"
    if resume and made_by is None and _unstamped_run(out):
        return  # a training run of a ClimaTune from before the stamps: let it continue
    if resume and made_by != command:
        raise ClimatuneError(
            f"cannot resume {out}: it was written by {who}, not by `climatune {command}`; "
            "give a run of the same command or a new folder"
        )
    if overwrite and made_by != command:
        raise ClimatuneError(
            f"--out {out} was written by {who}; --overwrite only replaces a folder written by "
            f"`climatune {command}`; choose another folder"
        )
    if not (resume or overwrite):
        hint = ", or pass --overwrite to replace it" if made_by == command else ""
        raise ClimatuneError(
            f"--out {out} already exists and is not empty; choose a new folder{hint}"
        )


def _holder(out: Path) -> str | None:
    """Who holds ``out``'s lock (``PID N on HOST``), or None when it is free or stale."""
    lock = out / LOCK
    try:
        with lock.open("rb") as fh:
            pid_text, _, host = fh.read(_SMALL).decode("utf-8", "replace").strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return None  # no lock, or a garbled one: its writer died while writing it
    if host != socket.gethostname():
        return f"PID {pid} on {host}"  # cannot be checked from here: taken as alive
    if pid == os.getpid():
        return None  # ours, left by a call that did not release it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return f"PID {pid} on {host}"


def _busy(out: Path) -> ClimatuneError:
    return ClimatuneError(
        f"--out {out} is being written by another climatune process ({_holder(out)}); "
        f"wait for it to finish or choose another folder (remove {out / LOCK} if no such "
        "process runs)"
    )


def _acquire(out: Path) -> None:
    """Create ``out``'s lock file, taking over a stale one; refuse a live one."""
    lock = out / LOCK
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if _holder(out) is not None:
                raise _busy(out) from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()} {socket.gethostname()}\n")
        key = _real(out)
        with _held_guard:
            _held.add(key)
        if not _claimed(key):
            atexit.register(_release, key)
        return
    raise _busy(out)


def _claimed(key: Path) -> bool:
    """Record ``key`` as claimed by the running :func:`releases_outputs` command, if any."""
    taken = _taken.get()
    if taken is not None:
        taken.append(key)
    return taken is not None


def _release(key: Path) -> None:
    with _held_guard:
        _held.discard(key)
        _started.pop(key, None)
    (key / LOCK).unlink(missing_ok=True)


def _discard_started(key: Path) -> None:
    """Empty a folder this process started (remove it if it created it); keep its lock."""
    with _held_guard:
        created = _started.get(key)
    if created is None:
        return
    for entry in key.iterdir():
        if entry.name != LOCK:
            _remove(entry)
    if created:
        shutil.rmtree(key, ignore_errors=True)


def _discard_bare(key: Path) -> None:
    """Remove a folder this process created that holds nothing but its stamp and lock:
    a command that stops on a user error leaves no empty claimed folder behind, which
    would refuse the corrected rerun without ``--overwrite``."""
    with _held_guard:
        created = _started.get(key)
    if created and key.is_dir() and {e.name for e in key.iterdir()} <= {STAMP, LOCK}:
        shutil.rmtree(key, ignore_errors=True)


def releases_outputs(func: _F) -> _F:
    """Wrap a command so that the output folders it locked are unlocked when it returns.

    A full disk, a read-only or forbidden path or a name too long becomes an
    :class:`OutputError`, and the folders the command started (not those it resumed) are
    removed: they hold only its own, half-written outputs.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        taken: list[Path] = []
        token = _taken.set(taken)
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            error = os_error(exc, default=taken[0] if taken else "the output")
            if error is None:
                if isinstance(exc, ClimatuneError):  # a user error found after the claim
                    for key in taken:
                        _discard_bare(key)
                raise
            for key in taken:
                _discard_started(key)
            if error is exc:
                raise
            raise error from exc
        finally:
            _taken.reset(token)
            for key in taken:
                if key in _held:
                    _release(key)

    return wrapper  # type: ignore[return-value]


def _write_stamp(out: Path, command: str) -> None:
    stamp = out / STAMP
    tmp = _tmp_name(stamp)  # not atomic_path: a second tune worker may write it at once
    tmp.write_text(json.dumps({"command": command, "climatune": __version__}) + "\n")
    os.replace(tmp, stamp)


def other_rank() -> bool:
    """Whether this process is a non-zero rank of a distributed launch (torchrun, SLURM,
    Lightning's DDP launcher): it writes into the folder that rank 0 claims."""
    ranks = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")
    return any(os.environ.get(name, "0") != "0" for name in ranks)


def prepare_output_dir(
    out: str | Path,
    *,
    command: str,
    inputs: Iterable[str | os.PathLike] = (),
    overwrite: bool = False,
    resume: bool = False,
    shared: bool = False,
    create: bool = True,
) -> Path:
    """Claim ``out`` as ``command``'s output folder: check it, create it, lock and stamp it.

    With ``create=False`` only check, so that a command can validate its inputs before it
    leaves anything (even an empty directory) behind; call it again to create.

    Parameters
    ----------
    out
        The folder to write.
    command
        The command writing it (``pretrain``, ``evaluate``, ...), recorded in its stamp.
    inputs
        Every file, store or folder the command reads; ``out`` may not be, contain or lie
        inside any of them.
    overwrite
        Replace an existing folder that the same command wrote.
    resume
        Continue in an existing folder that the same command wrote.
    shared
        Several processes may write the folder at once (the workers of one tuning study):
        it is not locked.

    Raises
    ------
    ClimatuneError
        If ``out`` is a file, an input, a non-empty folder that may not be reused, locked by
        another live process, or cannot be created.
    """
    out = Path(out)
    if other_rank():  # rank 0 checks, locks and stamps the folder for every rank
        return out
    if out.exists() and not out.is_dir():
        raise ClimatuneError(f"--out {out} is a file; give a directory path")
    key = _real(out)
    with _held_guard:
        inside_own = any(key == h or h in key.parents for h in _held)
    if inside_own:  # a step of the command this process runs, in the folder it claimed
        if create and not out.exists():
            out.mkdir(parents=True)
            _write_stamp(out, command)
        return out
    check_not_input(out, inputs)
    if not shared and out.is_dir() and _holder(out) is not None:
        raise _busy(out)
    _check_reuse(out, command, overwrite=overwrite, resume=resume)
    if not create:
        base = next(p for p in (out, *out.absolute().parents) if p.exists())
        if not base.is_dir():
            raise ClimatuneError(
                f"cannot create --out {out}: {base} is a file; choose another path"
            )
        _check_writable(base, out)
        return out
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ClimatuneError(
            f"cannot create --out {out}: {exc.strerror}; choose another path"
        ) from exc
    _check_writable(out, out)
    if shared:
        _claimed(key)
    else:
        _acquire(out)
    try:
        _check_reuse(out, command, overwrite=overwrite, resume=resume)  # again, now locked
        if overwrite and not resume:
            for entry in out.iterdir():
                if entry.name != LOCK:
                    _remove(entry)
        if not (shared or resume):  # everything in it will be this command's
            with _held_guard:
                _started[key] = created
        if _made_by(out) is None:
            _write_stamp(out, command)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)  # only the lock or a half stamp in it
        if not shared:
            _release(key)
        raise
    return out
