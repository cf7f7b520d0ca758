"""The samples to explain, their reference inputs and a background set, as tensors.

The reference inputs (Captum's ``baselines``; not the forecast baselines of
:mod:`climatune.evaluation.baselines`) are the training-period climatology of each input
cell at the calendar month of each input step (one mean for annual data), normalised like
the inputs. That is the "nothing unusual happened" state, so attributions explain anomalies. Zero in normalised
space is *not* that: the normaliser is per variable, so zero is the variable's global
mean, a spatially uniform field, and attributions against it would mostly describe the
mean meridional gradient.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from climatune.data.normalize import Normalizer
from climatune.data.samples import TaskSamples
from climatune.data.view import TaskView
from climatune.evaluation.climatology import climatology, climatology_at

__all__ = [
    "ExplainInputs",
    "REFERENCE_INPUTS",
    "ReferenceInput",
    "load_inputs",
    "background",
    "baseline_description",
]

#: What attributions can be measured against (the ``baseline`` argument of Captum's methods).
REFERENCE_INPUTS = ("climatology", "zero")
ReferenceInput = Literal["climatology", "zero"]


@dataclass
class ExplainInputs:
    """Normalised inputs of ``n`` samples and what attributions need around them.

    Attributes
    ----------
    fields, baseline : Tensor
        ``[n, V, history, H, W]``, NaN read as 0 (as the network sees them).
    valid : ndarray
        ``[V, H, W]`` bool: cells where each input variable is defined.
    times, target_times : ndarray
        cftime of each sample's last input step (the anchor t) and of its target.
    """

    fields: torch.Tensor
    baseline: torch.Tensor
    valid: np.ndarray
    times: np.ndarray
    target_times: np.ndarray
    split: str


def _stack(view: TaskView, split: str, anchors: np.ndarray, normalizer: Normalizer) -> torch.Tensor:
    """Normalised fields of ``anchors``, reading only the steps those samples need."""
    sub = dataclasses.replace(view, anchors={split: np.asarray(anchors)})
    samples = TaskSamples(sub, split, normalizer, mask_ratio=0.0)
    return torch.stack([samples[i]["fields"] for i in range(len(samples))])


def _climatology_baseline(
    view: TaskView, anchors: np.ndarray, normalizer: Normalizer
) -> torch.Tensor:
    """The climatology at every input step of ``anchors``, normalised: ``[n, V, history, H, W]``."""
    inputs = view.input_fields()
    clim = climatology(inputs.isel(time=view.steps("train"))).load()
    steps = anchors[:, None] + np.arange(-view.history + 1, 1)[None, :]
    at = climatology_at(clim, inputs.time.isel(time=steps.ravel()))
    out = np.empty(
        (anchors.size, len(view.inputs), view.history, *view.region_mask.shape), np.float32
    )
    months = at.time.dt.month.values
    for v, name in enumerate(view.inputs):
        raw = at[name].transpose("time", "lat", "lon").values
        values = (raw - normalizer.centre(name, months, raw.shape[1:])) / normalizer.std_[name]
        out[:, v] = values.reshape(anchors.size, view.history, *values.shape[1:])
    return torch.from_numpy(np.nan_to_num(out, nan=0.0))


def load_inputs(
    view: TaskView,
    split: str,
    n: int,
    normalizer: Normalizer,
    *,
    baseline: ReferenceInput = "climatology",
) -> ExplainInputs:
    """The first ``n`` samples of ``split`` with their baselines."""
    anchors = view.anchors[split][:n]
    fields = _stack(view, split, anchors, normalizer)
    base = (
        _climatology_baseline(view, anchors, normalizer)
        if baseline == "climatology"
        else torch.zeros_like(fields)
    )
    first = view.input_fields().isel(time=int(anchors[0]))
    valid = np.stack(
        [np.isfinite(first[name].transpose("lat", "lon").values) for name in view.inputs]
    )
    time = view.fields.time
    return ExplainInputs(
        fields, base, valid, time.values[anchors], time.values[view.target_index(anchors)], split
    )


def background(view: TaskView, normalizer: Normalizer, n: int = 8) -> torch.Tensor:
    """``n`` training samples spread evenly over the train split (SHAP's background)."""
    anchors = view.anchors["train"]
    picks = anchors[
        np.unique(np.linspace(0, anchors.size - 1, min(n, anchors.size)).round().astype(int))
    ]
    return torch.cat([_stack(view, "train", np.array([a]), normalizer) for a in picks])


def baseline_description(method: str, baseline: ReferenceInput) -> str:
    """One sentence for the output's attributes: what the attribution is measured against."""
    if method == "saliency":
        return "none: saliency is the local gradient of the target with respect to each normalised input"
    if method == "shap":
        return "background of training samples spread over the train split (expected gradients)"
    if baseline == "zero":
        return (
            "zero in normalised space: each variable's global training mean, a spatially uniform "
            "field (not the per-cell climatology)"
        )
    return (
        "training-period climatology of each input cell at the calendar month of each input step "
        "(one mean for annual data), normalised like the inputs"
    )
