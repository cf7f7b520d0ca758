"""``--resume``: continue a run only with the config it was started with, from a safe checkpoint.

A config that would train a different network (width, variables, task, strategy, ...)
is refused before anything is written; only the budget (epochs, steps, patience) and the
hardware may change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import ValidationError

from climatune.config import Config
from climatune.errors import ClimatuneError

__all__ = ["BUDGET_KEYS", "check_resume_config", "refuse_ensemble_resume", "resume_checkpoint"]

# keys a resumed run may change: how long it trains and on what hardware, not what it trains
BUDGET_KEYS = frozenset(
    f"trainer.{k}"
    for k in (
        "max_epochs",
        "max_steps",
        "patience",
        "accelerator",
        "devices",
        "strategy",
        "num_nodes",
        "log_every_n_steps",
        "progress_bar",
        "record_samples",
        "compile",
    )
) | {"data.num_workers", "data.in_memory"}


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flat(value, f"{prefix}{key}."))
    return {k.rstrip("."): v for k, v in out.items()}


def _as_read_now(saved: Any) -> dict[str, Any]:
    """A saved config as this version resolves it (older keys migrated), else as written."""
    if not isinstance(saved, dict):
        return {}
    try:
        return Config.model_validate(saved).model_dump(mode="json")
    except ValidationError:
        return saved


def check_resume_config(run: Path, cfg: Config) -> None:
    """Refuse to resume ``run`` with a config that trains something else than it did.

    ``run/config.yaml`` (the resolved config the run was started with) is compared with
    ``cfg``, key by key; keys in :data:`BUDGET_KEYS` may differ. A run without a
    ``config.yaml`` (from before it was written) is not checked.

    Raises
    ------
    ClimatuneError
        Naming every key that differs.
    """
    path = Path(run) / "config.yaml"
    if not path.is_file():
        return
    try:
        saved = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ClimatuneError(f"cannot resume {run}: {path} does not read ({exc})") from exc
    old = _flat(_as_read_now(saved))
    new = _flat(cfg.model_dump(mode="json"))
    differ = sorted(
        k for k in old.keys() | new.keys() if k not in BUDGET_KEYS and old.get(k) != new.get(k)
    )
    if differ:
        shown = ", ".join(f"{k} ({old.get(k)!r} -> {new.get(k)!r})" for k in differ[:8])
        more = f" and {len(differ) - 8} more" if len(differ) > 8 else ""
        raise ClimatuneError(
            f"cannot resume {run}: the config differs from the one it was started with in "
            f"{shown}{more}; only the budget (trainer.max_epochs, trainer.max_steps, "
            "trainer.patience) and the hardware may change; use the run's config.yaml or "
            "start a new run"
        )


def resume_checkpoint(resume: str | Path | None, cfg: Config) -> Path | None:
    """``RUN/checkpoints/last.ckpt`` of the run to resume, checked to load without unpickling code.

    A checkpoint that does not load with ``torch.load(weights_only=True)`` (a pickle that
    would run code, a truncated or foreign file), or a ``cfg`` that differs from the run's
    ``config.yaml`` in more than the budget, is refused with a ClimatuneError.
    """
    if resume is None:
        return None
    check_resume_config(Path(resume), cfg)
    ckpt = Path(resume) / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise ClimatuneError(f"cannot resume: {ckpt} does not exist")
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as exc:  # whatever a bad file raises, it is the file's fault
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClimatuneError(
            f"cannot resume from {ckpt}: it does not load as a safe checkpoint ({reason}); "
            "refusing to load it, start a new run instead"
        ) from exc
    epoch = state.get("epoch") if isinstance(state, dict) else None
    if isinstance(epoch, int) and cfg.trainer.max_epochs < epoch + 1:
        raise ClimatuneError(
            f"cannot resume {resume}: it has trained {epoch + 1} epochs, more than "
            f"trainer.max_epochs={cfg.trainer.max_epochs}; set trainer.max_epochs to "
            f"{epoch + 1} or more"
        )
    return ckpt


def refuse_ensemble_resume(resume: str | Path | None, cfg: Config) -> None:
    """Refuse ``--resume`` of an ensemble run: its members are trained in turn, and
    continuing them is not supported yet."""
    if resume is not None and cfg.ensemble.members > 1:
        raise ClimatuneError(
            f"cannot resume an ensemble run ({cfg.ensemble.members} members): run it again "
            "(--overwrite replaces the earlier run)"
        )
