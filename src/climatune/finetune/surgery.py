"""Adapt a pre-trained network to a new task: inputs by variable name, static channels, head.

Every change is returned as a :class:`SurgeryReport` so the user is told what happened;
nothing is ever silently skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from climatune.data.view import TaskView
from climatune.errors import ClimatuneError
from climatune.inference import ArtifactMeta

__all__ = ["SurgeryReport", "adapt_network"]


@dataclass
class SurgeryReport:
    """What fine-tuning changed in the pre-trained network."""

    kept: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    new_head: str | None = None
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"inputs kept:    {', '.join(self.kept) or '-'}",
            f"inputs added:   {', '.join(self.added) or '-'} (fresh weights, zero-initialised)",
            f"inputs dropped: {', '.join(self.dropped) or '-'}",
            f"head:           {self.new_head or 'pre-trained head kept'}",
        ]
        return out + self.notes

    def to_dict(self) -> dict[str, object]:
        return {
            "kept": self.kept,
            "added": self.added,
            "dropped": self.dropped,
            "new_head": self.new_head,
            "notes": self.notes,
        }


def adapt_network(
    net: nn.Module,
    meta: ArtifactMeta,
    view: TaskView,
    n_static: int,
    head_options: Mapping[str, Any] | None = None,
    distribution: str = "none",
) -> SurgeryReport:
    """Modify ``net`` in place for ``view``'s task and return what changed.

    Sharing no input variable is allowed: the stem is then all new, but the backbone (and
    the head, if the outputs are the same) still transfer, and the report says so. A new
    head is built with ``head_options`` (``model.head`` in the config) and predicts
    ``distribution`` (``model.head_distribution``): a head that predicts another
    distribution than the pre-trained one (a Gaussian head on a deterministic parent) is
    new, so its scale channels are trained from the start.

    Raises
    ------
    ClimatuneError
        On a different history length. Units are the caller's:
        :func:`~climatune.inference.predict.model_units` converts the data first.
    """
    report = SurgeryReport()
    old_inputs = meta.inputs
    report.kept = [v for v in view.inputs if v in old_inputs]
    report.added = [v for v in view.inputs if v not in old_inputs]
    report.dropped = [v for v in old_inputs if v not in view.inputs]
    stem = net.stem
    if stem.history != view.history:
        raise ClimatuneError(
            f"the pre-trained model reads {stem.history} history step(s) but this task has "
            f"history={view.history}; set task.history={stem.history}"
        )
    if report.dropped:
        stem.drop_variables(report.dropped)
    if report.added:
        stem.add_variables(report.added)
    if report.dropped or report.added:  # the indices name old inputs; training sets them anew
        net.set_residual(None)
    if stem.n_static != n_static:
        stem.reset_static(n_static)
        report.notes.append(
            f"static channels: {meta.data.get('static')} -> {n_static} channels, re-initialised"
        )
    kind = "scalar" if view.is_scalar else "field"
    head_changed = (
        kind != net.head.kind
        or list(view.targets) != meta.outputs
        or distribution != net.head.distribution
    )
    if head_changed:
        was = net.head.distribution
        net.reset_head(len(view.targets), kind, **(head_options or {}), distribution=distribution)
        what = kind if distribution == "none" else f"{distribution} {kind}"
        report.new_head = f"new {what} head for {view.targets} (was {meta.outputs}"
        report.new_head += f", {was})" if was != distribution else ")"
    if not report.kept:
        report.notes.append(
            f"variable change: no input is shared with the pre-trained model; all of its inputs "
            f"({', '.join(old_inputs)}) dropped, {', '.join(view.inputs)} added, backbone "
            f"{'transferred' if head_changed else 'and head transferred'}"
        )
    if bool(net.backbone.hparams.get("periodic_lon")) != view.periodic_lon:
        net.set_periodic_lon(view.periodic_lon)
        report.notes.append(
            f"longitude padding: {'periodic' if view.periodic_lon else 'not periodic'} on this grid"
        )
    return report
