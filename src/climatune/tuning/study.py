"""The Optuna study in shared RDB storage: SQLite locally, PostgreSQL across machines.

Every worker that opens the same storage URL and study name joins the same study, so
running a command again, or on several machines at once, adds trials to one study.
"""

from __future__ import annotations

import errno
import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from climatune.errors import ClimatuneError, os_error

__all__ = ["default_storage", "open_storage", "open_study", "storage_errors"]

_RETRIES = 5
# What SQLite says when the machine refuses a write, as the matching OS error
_SQLITE_ERRORS = {
    "database or disk is full": errno.ENOSPC,
    "attempt to write a readonly database": errno.EROFS,
    "unable to open database file": errno.EACCES,
}


def default_storage(out: Path) -> str:
    """``sqlite:///OUT/study.db`` with an absolute path."""
    return f"sqlite:///{(Path(out) / 'study.db').resolve()}"


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Connect to the RDB storage at ``url``, creating its tables if needed.

    SQLite waits up to 60 s for a lock instead of failing with "database is locked";
    heartbeats let a later worker mark the trials of a killed worker as failed.
    """
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise ClimatuneError(
            f"--storage {url!r} is not a database URL; use e.g. sqlite:///runs/tune/study.db "
            "or postgresql://user:password@host/db"
        ) from None
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = {"connect_args": {"timeout": 60}} if sqlite else {"pool_pre_ping": True}
    for attempt in range(_RETRIES):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine, heartbeat_interval=60, grace_period=300
                )
        except ImportError as exc:
            backend = parsed.get_backend_name()
            hint = (
                "it with pip install psycopg2-binary"
                if backend == "postgresql"
                else "its SQLAlchemy driver"
            )
            raise ClimatuneError(
                f"--storage {backend} needs a database driver that is not installed; install {hint}"
            ) from exc
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError) as exc:
            if attempt == _RETRIES - 1:  # two workers creating the tables at once race briefly
                raise ClimatuneError(f"cannot open --storage {parsed!r}: {exc.orig}") from exc
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def open_study(
    storage: optuna.storages.BaseStorage, name: str, *, direction: str, folds: int, metric: str
) -> optuna.Study:
    """Create the study, or load it if it exists, and check that it tunes the same thing.

    The number of folds and the metric are stored on the study; resuming it with other
    values would mix incomparable scores, so that is an error. The TPE sampler is not
    seeded, so that workers started together explore different points, and it lies about
    running trials (``constant_liar``) so that parallel trials do not pile onto one point.
    The median pruner waits for 3 complete trials, then stops a trial after fold
    ``(folds - 1) // 2`` or later when its running mean is worse than the median.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(n_startup_trials=5, constant_liar=True)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=(folds - 1) // 2)
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        load_if_exists=True,
        direction=direction,
        sampler=sampler,
        pruner=pruner,
    )
    if study.direction.name.lower() != direction:
        raise ClimatuneError(
            f"study '{name}' is {study.direction.name.lower()}d but metric '{metric}' needs "
            f"{direction}; use another --study"
        )
    attrs = study.user_attrs
    for key, value in (("folds", folds), ("metric", metric)):
        if key not in attrs:
            study.set_user_attr(key, value)
        elif attrs[key] != value:
            flag = "--folds" if key == "folds" else "metric"
            raise ClimatuneError(
                f"study '{name}' was run with {flag} {attrs[key]}, not {value}; "
                "use the same value to resume it, or another --study"
            )
    return study


@contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Turn SQLite's full disk, read-only or forbidden file into one error line naming it.

    SQLite reports these as ``OperationalError`` (which Optuna may wrap), not as OSError.
    """
    try:
        yield
    except Exception as exc:
        seen: BaseException | None = exc
        for _ in range(16):  # the chain, with a bound in case it loops
            if seen is None:
                break
            code = next((c for text, c in _SQLITE_ERRORS.items() if text in str(seen)), None)
            if code is not None:
                where = make_url(url).database or url
                raise os_error(OSError(code, os.strerror(code)), path=where) or exc from exc
            seen = seen.__cause__ or seen.__context__
        raise
