"""Start a fine-tune from a pre-trained artifact: the adapted network and merged statistics."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch

from climatune.data.normalize import Normalizer
from climatune.data.samples import fit_normalizer, static_channels
from climatune.data.view import TaskView
from climatune.errors import ClimatuneError
from climatune.finetune.settings import NormalizationPolicy
from climatune.finetune.surgery import SurgeryReport, adapt_network
from climatune.inference import LoadedModel, model_units
from climatune.models.net import ClimateNet

__all__ = ["adapt_parent", "merged_normalizer", "seeded"]


def merged_normalizer(
    parent: LoadedModel, view: TaskView, policy: NormalizationPolicy
) -> tuple[Normalizer, list[str]]:
    """Pre-trained statistics, refitted on this data's training years where ``policy`` says.

    New variables are always fitted on this data. Returns the normaliser and report lines.

    Raises
    ------
    ClimatuneError
        When the policy is ``keep`` for a variable whose data have clearly shifted.
    """
    fresh, old = fit_normalizer(view), parent.normalizer
    kept: list[str] = []
    refit: list[str] = []
    notes: list[str] = []
    for name in [n for n in fresh.mean_ if n in old.mean_]:
        choice = policy.variables.get(name, policy.default)
        shift = old.shift(fresh, name)
        if shift and choice == "keep":
            raise ClimatuneError(
                f"'{name}' here is not distributed like the pre-trained model's data ({shift}); "
                f"set finetune.normalization.variables.{name}=refit (or auto), or force_keep "
                "if the shift is meant to be read as an anomaly"
            )
        (refit if choice == "refit" or (choice == "auto" and shift) else kept).append(name)
        if shift:
            done = "refitted" if name in refit else f"kept ({choice})"
            notes.append(f"statistics of {name} {done}: {shift}")
    fitted = [n for n in fresh.mean_ if n not in old.mean_]
    lines = [
        f"statistics:     kept {', '.join(kept) or '-'}; refitted {', '.join(refit) or '-'}"
        + (f"; fitted {', '.join(fitted)} (new)" if fitted else ""),
        *notes,
    ]
    return old.merge(fresh, refit), lines


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Draw from torch's CPU generator seeded with ``seed``; the global state is restored."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def adapt_parent(
    parent: LoadedModel,
    view: TaskView,
    policy: NormalizationPolicy,
    seed: int,
    head_options: Mapping[str, Any] | None = None,
) -> tuple[TaskView, Normalizer, ClimateNet, SurgeryReport]:
    """``parent``'s network adapted to ``view`` and its statistics merged with this data's.

    ``view`` comes back in the parent's units (``sst: degC -> K``, :func:`model_units`),
    which the training uses. New weights (head, stem variables, static channels) are
    drawn from ``seed``; a new head is built with ``head_options`` (``model.head``). The
    report lists every change, unit conversions included.
    """
    view, converted = model_units(parent, view, "the pre-trained model")
    names, _ = static_channels(view)
    net = parent.net.train()
    if not isinstance(net, ClimateNet):
        raise ClimatuneError(
            "adapt one member of a pre-trained ensemble at a time (LoadedModel.member(k))"
        )
    with seeded(seed):
        report = adapt_network(net, parent.meta, view, len(names), head_options)
    if converted:
        report.notes.append(f"units converted to the pre-trained model's: {', '.join(converted)}")
    normalizer, lines = merged_normalizer(parent, view, policy)
    report.notes.extend(lines)
    return view, normalizer, net, report
