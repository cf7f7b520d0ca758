"""Start a fine-tune from a pre-trained artifact: the adapted network and merged statistics."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch

from climatune.data.normalize import Normalizer, SourceNormalizer
from climatune.data.samples import (
    fit_normalizer,
    normalization_mode,
    static_channels,
    with_static_record,
)
from climatune.data.view import TaskView
from climatune.errors import ClimatuneError
from climatune.finetune.settings import NormalizationPolicy
from climatune.finetune.surgery import SurgeryReport, adapt_network
from climatune.inference import LoadedModel, model_units
from climatune.models.net import ClimateNet

__all__ = [
    "adapt_parent",
    "check_parent",
    "finetune_normalization",
    "merged_normalizer",
    "seeded",
]

_LEARNT = {"anomaly": "anomalies from a climatology", "global": "globally z-scored values"}


def finetune_normalization(parent: LoadedModel, view: TaskView, choice: str = "auto") -> str:
    """The normalisation mode of a fine-tune: always the parent's.

    The network has learnt one representation, and only that one transfers: ``auto``
    (``data.normalization``'s default) follows the parent, the parent's own mode is
    accepted, and the other mode is refused.

    Raises
    ------
    ClimatuneError
        When ``choice`` names the other mode, or the parent's mode does not fit this task.
    """
    mode = "anomaly" if parent.normalizer.climatology_ else "global"
    if choice not in ("auto", mode):
        raise ClimatuneError(
            f"data.normalization={choice}, but the pre-trained model learnt {_LEARNT[mode]} "
            f"(data.normalization={mode}), and a fine-tune keeps what it learnt: set "
            f"data.normalization to auto or {mode}, or pretrain with {choice}"
        )
    try:
        return normalization_mode(view, mode)
    except ClimatuneError:
        if view.kind in ("forecast", "index"):
            raise
        raise ClimatuneError(
            f"the pre-trained model learnt {_LEARNT[mode]}, which a {view.kind} task does not "
            "use; fine-tune it on a forecast or index task, or start from a model pretrained "
            "with data.normalization=global"
        ) from None


def _policy_split(
    old: Normalizer, fresh: Normalizer, policy: NormalizationPolicy, owner: str = ""
) -> tuple[list[str], list[str], list[str]]:
    """The variables of both ``old`` and ``fresh`` whose statistics are kept and refitted per
    ``policy``, and a note per clearly shifted one; ``owner`` names a source in them."""
    kept: list[str] = []
    refit: list[str] = []
    notes: list[str] = []
    for name in [n for n in fresh.mean_ if n in old.mean_]:
        choice = policy.variables.get(name, policy.default)
        shift = old.shift(fresh, name)
        if shift and choice == "keep":
            raise ClimatuneError(
                f"'{name}'{owner} here is not distributed like the pre-trained model's data "
                f"({shift}); set finetune.normalization.variables.{name}=refit (or auto), or "
                "force_keep if the shift is meant to be read as an anomaly"
            )
        (refit if choice == "refit" or (choice == "auto" and shift) else kept).append(name)
        if shift:
            done = "refitted" if name in refit else f"kept ({choice})"
            notes.append(f"statistics of {name}{owner} {done}: {shift}")
    return kept, refit, notes


def _per_source(
    old: Normalizer,
    pooled: Normalizer,
    view: TaskView,
    mode: str,
    policy: NormalizationPolicy,
) -> tuple[SourceNormalizer, list[str]]:
    """``pooled`` plus one set of statistics per source of ``view`` (fine-tuning with
    ``data.source_normalization: per_source``): a source the pre-trained model kept its own
    statistics for keeps them (refitted per ``policy``, as pooled ones are), any other
    source gets its own, fitted on its training years."""
    fresh = fit_normalizer(view, mode, per_source=True)
    assert isinstance(fresh, SourceNormalizer)
    known = old.sources_ if isinstance(old, SourceNormalizer) else {}
    out = SourceNormalizer()
    out.__dict__.update(pooled.__dict__)
    out.sources_ = {}
    lines, notes = [], []
    for name, own in fresh.sources_.items():
        if name not in known:
            out.sources_[name] = own
            lines.append(f"{name} fitted (a source new to the model)")
            continue
        kept, refit, more = _policy_split(known[name], own, policy, f" in source {name}")
        out.sources_[name] = known[name].merge(own, refit)
        lines.append(f"{name} kept {', '.join(kept) or '-'}, refitted {', '.join(refit) or '-'}")
        notes += more
    return out, [f"per source:     {'; '.join(lines)}", *notes]


def merged_normalizer(
    parent: LoadedModel,
    view: TaskView,
    policy: NormalizationPolicy,
    choice: str = "auto",
    *,
    per_source: bool = False,
) -> tuple[Normalizer, list[str]]:
    """Pre-trained statistics, refitted on this data's training years where ``policy`` says.

    The mode is the parent's (see :func:`finetune_normalization`; ``choice`` is
    ``data.normalization``). New variables are always fitted on this data, and so is the
    climatology of a parent trained on anomalies (the anomalies are what transfers; the
    policy applies to their scale). Returns the normaliser and report lines.

    A parent pre-trained with per-source statistics (``data.source_normalization:
    per_source``) transfers its pooled ones: the fine-tuning data is a new source. A line
    says so. With ``per_source`` (the fine-tune's own ``data.sources`` kept per source), a
    source the parent knew by name keeps its statistics (refitted per ``policy``) and any
    other gets its own.

    Raises
    ------
    ClimatuneError
        When the policy is ``keep`` for a variable whose data have clearly shifted (for
        anomalies: whose spread has), or ``choice`` is not the parent's mode.
    """
    old = parent.normalizer
    mode = finetune_normalization(parent, view, choice)
    fresh = fit_normalizer(view, mode)
    kept, refit, notes = _policy_split(old, fresh, policy)
    fitted = [n for n in fresh.mean_ if n not in old.mean_]
    lines = [
        f"statistics:     kept {', '.join(kept) or '-'}; refitted {', '.join(refit) or '-'}"
        + (f"; fitted {', '.join(fitted)} (new)" if fitted else ""),
        *notes,
    ]
    if fresh.climatology_:
        lines.insert(1, f"climatology:    refitted on this data ({', '.join(fresh.climatology_)})")
    merged = old.merge(fresh, refit)
    if per_source:
        merged, more = _per_source(old, merged, view, mode, policy)
        return merged, lines + more
    if isinstance(old, SourceNormalizer) and old.sources_:
        lines.append(
            f"per source:     not used ({', '.join(old.sources_)}): this data is a new "
            "source, read with the pooled statistics (data.source_normalization=per_source "
            "keeps those of a source listed in data.sources by the same name)"
        )
    return merged, lines


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Draw from torch's CPU generator seeded with ``seed``; the global state is restored."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _parent_static(parent: LoadedModel, view: TaskView) -> TaskView:
    """``view`` reading its static inputs as ``parent`` does: its position wavelengths (a
    config that sets others is refused) and its user fields' statistics."""
    theirs = with_static_record(view, parent.meta.data)
    if view.position and view.position != theirs.position:
        raise ClimatuneError(
            f"data.position_wavelengths={list(view.position)}, but the pre-trained model reads "
            f"{list(theirs.position) or 'none'}; leave it unset to fine-tune with the model's"
        )
    return theirs


def check_parent(parent: LoadedModel, view: TaskView, normalization: str = "auto") -> None:
    """Refuse, before any work, a config that a fine-tune of ``parent`` on ``view`` refuses:
    other position wavelengths, another normalisation mode (``data.normalization``,
    :func:`finetune_normalization`). For commands that fine-tune later (``tune``)."""
    finetune_normalization(parent, _parent_static(parent, view), normalization)


def adapt_parent(
    parent: LoadedModel,
    view: TaskView,
    policy: NormalizationPolicy,
    seed: int,
    head_options: Mapping[str, Any] | None = None,
    normalization: str = "auto",
    distribution: str = "none",
    per_source: bool = False,
) -> tuple[TaskView, Normalizer, ClimateNet, SurgeryReport]:
    """``parent``'s network adapted to ``view`` and its statistics merged with this data's.

    ``view`` comes back in the parent's units (``sst: degC -> K``, :func:`model_units`),
    which the training uses. New weights (head, stem variables, static channels) are
    drawn from ``seed``; a new head is built with ``head_options`` (``model.head``);
    ``normalization`` is ``data.normalization`` (see :func:`finetune_normalization`);
    ``distribution`` is ``model.head_distribution``; ``per_source`` keeps statistics per
    source (``data.source_normalization``, :func:`merged_normalizer`). The report lists
    every change, unit conversions included.
    """
    view, converted = model_units(parent, view, "the pre-trained model")
    view = _parent_static(parent, view)
    finetune_normalization(parent, view, normalization)  # before any work
    names, _ = static_channels(view)
    net = parent.net.train()
    if not isinstance(net, ClimateNet):
        raise ClimatuneError(
            "adapt one member of a pre-trained ensemble at a time (LoadedModel.member(k))"
        )
    with seeded(seed):
        report = adapt_network(net, parent.meta, view, len(names), head_options, distribution)
    if converted:
        report.notes.append(f"units converted to the pre-trained model's: {', '.join(converted)}")
    normalizer, lines = merged_normalizer(
        parent, view, policy, normalization, per_source=per_source
    )
    report.notes.extend(lines)
    return view, normalizer, net, report
