"""User-facing errors.

A :class:`ClimatuneError` is a mistake in the user's input (a file, a config, a flag). The
command line prints it as one line, ``climatune: error: <message>``, and exits with code 2.
An :class:`Interrupted` training run (SIGTERM, Ctrl-C) exits with 128 + the signal
number. Anything else that escapes is a bug and exits with code 1.
"""

from __future__ import annotations

import difflib
import errno
import signal
from collections.abc import Iterable
from pathlib import Path

__all__ = ["ClimatuneError", "OutputError", "Interrupted", "closest", "os_error"]


class ClimatuneError(Exception):
    """A user error: bad data, bad config or bad arguments. Exit code 2."""


class OutputError(ClimatuneError):
    """Writing failed for a reason of the machine, not of ClimaTune: a full disk, a
    read-only or forbidden folder, a name too long. Exit code 2; the command's new outputs
    are removed."""


# What an OSError of the machine means to the user, and how to get past it.
_OS_ERRORS = {
    errno.ENOSPC: "no space left on the device while writing {path}; free space or choose "
    "another path",
    errno.EDQUOT: "disk quota exceeded while writing {path}; free space or choose another path",
    errno.EROFS: "cannot write {path}: the file system is read-only; choose another path",
    errno.EACCES: "cannot access {path}: permission denied; check its permissions or choose "
    "another path",
    errno.EPERM: "cannot access {path}: operation not permitted; check its permissions or "
    "choose another path",
    errno.ENAMETOOLONG: "cannot use {path}: a name in it is too long; choose a shorter path",
}


def os_error(
    exc: BaseException, *, path: str | Path | None = None, default: str | Path = "the output"
) -> OutputError | None:
    """The :class:`OutputError` for a full disk, a read-only or forbidden path or a name
    too long anywhere in ``exc``'s chain, or None for any other error.

    The message names ``path`` if given, else the file of the OSError, else ``default``.

    Examples
    --------
    >>> str(os_error(OSError(errno.EROFS, "Read-only file system", "/mnt/x.nc")))
    'cannot write /mnt/x.nc: the file system is read-only; choose another path'
    """
    if isinstance(exc, OutputError):
        return exc
    seen: BaseException | None = exc
    for _ in range(16):  # the chain, with a bound in case it loops
        if seen is None or isinstance(seen, ClimatuneError):
            return None
        if isinstance(seen, OSError) and seen.errno in _OS_ERRORS:
            where = path or seen.filename or default
            return OutputError(_OS_ERRORS[seen.errno].format(path=where))
        seen = seen.__cause__ or seen.__context__
    return None


class Interrupted(Exception):
    """Training stopped by SIGTERM or SIGINT; ``checkpoint`` is the resumable one, or None."""

    def __init__(self, signum: int, run: Path, checkpoint: Path | None, epoch: int | None) -> None:
        self.signum, self.run, self.checkpoint, self.epoch = signum, run, checkpoint, epoch
        name = signal.Signals(signum).name
        if checkpoint is None:
            kept = (
                "no epoch had finished, so there is nothing to resume; start again with --overwrite"
            )
        else:
            done = "" if epoch is None else f" (epochs done: {epoch + 1})"
            kept = f"{checkpoint} holds the last completed epoch{done}"
        super().__init__(f"interrupted by {name}; {kept}")

    @property
    def exit_code(self) -> int:
        """128 + the signal number: 143 for SIGTERM, 130 for SIGINT."""
        return 128 + self.signum


def closest(word: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest valid choice, or ``""``.

    Examples
    --------
    >>> closest("lerning_rate", ["lr", "learning_rate"])
    " (did you mean 'learning_rate'?)"
    """
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""
