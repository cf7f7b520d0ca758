"""User-facing errors.

A :class:`ClimatuneError` is a mistake in the user's input (a file, a config, a flag). The
command line prints it as one line, ``climatune: error: <message>``, and exits with code 2.
Anything else that escapes is a bug and exits with code 1.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["ClimatuneError", "closest"]


class ClimatuneError(Exception):
    """A user error: bad data, bad config or bad arguments. Exit code 2."""


def closest(word: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest valid choice, or ``""``.

    Examples
    --------
    >>> closest("lerning_rate", ["lr", "learning_rate"])
    " (did you mean 'learning_rate'?)"
    """
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""
