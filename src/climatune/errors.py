"""User-facing errors.

A :class:`ClimatuneError` is a mistake in the user's input (a file, a config, a flag). The
command line prints it as one line, ``climatune: error: <message>``, and exits with code 2.
An :class:`Interrupted` training run (SIGTERM, Ctrl-C) exits with 128 + the signal
number. Anything else that escapes is a bug and exits with code 1.
"""

from __future__ import annotations

import difflib
import signal
from collections.abc import Iterable
from pathlib import Path

__all__ = ["ClimatuneError", "Interrupted", "closest"]


class ClimatuneError(Exception):
    """A user error: bad data, bad config or bad arguments. Exit code 2."""


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
