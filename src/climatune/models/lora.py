"""Low-rank adapters (LoRA) on a ``ClimateNet``, through ``peft``.

:func:`apply_lora` wraps the Conv2d and Linear layers of the chosen parameter groups with
LoRA adapters and freezes everything else except the groups kept ``trainable`` (the stem
and the head by default). :func:`merge_lora` folds the adapters back into ordinary weights, so a saved
model has the same keys as one trained without LoRA.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from torch import nn

from climatune.errors import ClimatuneError

if TYPE_CHECKING:
    from climatune.models.net import ClimateNet

__all__ = ["apply_lora", "merge_lora", "lora_targets", "has_lora"]

_INSTALL = "LoRA needs the peft package; install it with: pip install peft"


def _peft() -> tuple[Any, type]:
    try:
        import peft
        from peft.tuners.lora import LoraLayer
    except ImportError as err:  # pragma: no cover - peft is a dependency
        raise ClimatuneError(_INSTALL) from err
    return peft, LoraLayer


def _supported(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    # peft's Conv2d adapter ignores dilation and cannot merge grouped convolutions.
    return (
        isinstance(module, nn.Conv2d)
        and module.groups == 1
        and all(d == 1 for d in module.dilation)
    )


def lora_targets(net: ClimateNet, target: str | Iterable[str] = "backbone") -> list[str]:
    """Names of the Conv2d/Linear layers in the parameter groups matching ``target``."""
    names = {id(m): n for n, m in net.named_modules()}
    groups = net.module_groups()
    out: list[str] = []
    for group in net.match_groups(target):
        out += [names[id(m)] for m in groups[group].modules() if _supported(m)]
    return out


def has_lora(net: nn.Module) -> bool:
    """Whether ``net`` holds LoRA adapters."""
    _, lora_layer = _peft()
    return any(isinstance(m, lora_layer) for m in net.modules())


def apply_lora(
    net: ClimateNet,
    rank: int = 4,
    alpha: float = 8.0,
    target: str | Iterable[str] = "backbone",
    dropout: float = 0.0,
    trainable: str | Iterable[str] = ("stem", "head"),
) -> ClimateNet:
    """Add LoRA adapters to ``net`` in place and return it.

    Parameters
    ----------
    net : ClimateNet
        The network; its layers are wrapped in place.
    rank, alpha : int, float
        Adapter rank and scale (the update is ``alpha / rank * B @ A``).
    target : str or iterable of str
        Parameter groups whose Conv2d and Linear layers get adapters (see
        :meth:`ClimateNet.match_groups`): ``"backbone"``, ``"backbone.stage3"``, ...
    dropout : float
        Dropout on the adapters' input.
    trainable : str or iterable of str
        Groups trained in full alongside the adapters. By default the head and the stem:
        the stem is tiny, and variables or statics that fine-tuning added start from zero
        weights, which only train if the stem does.

    Returns
    -------
    ClimateNet
        ``net``, where only adapter weights and ``trainable`` groups require gradients.
    """
    peft, _ = _peft()
    if has_lora(net):
        raise ClimatuneError("the network already has LoRA adapters; merge them first")
    if rank < 1:
        raise ClimatuneError(f"LoRA rank must be at least 1, got {rank}")
    targets = lora_targets(net, target)
    if not targets:
        raise ClimatuneError(f"no Conv2d or Linear layer in {target!r} to put LoRA adapters on")
    config = peft.LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none"
    )
    peft.inject_adapter_in_model(config, net)
    for name, param in net.named_parameters():
        param.requires_grad_("lora_" in name)
    if trainable:
        net.unfreeze(trainable)
    return net


def merge_lora(net: ClimateNet, inplace: bool = False) -> ClimateNet:
    """Fold LoRA adapters into the weights they adapt and remove them.

    The result is a plain ``ClimateNet`` (every parameter trainable) with the same
    ``state_dict`` keys as a network that never had adapters. Unless ``inplace``, ``net``
    is left as it was.
    """
    _, lora_layer = _peft()
    if not inplace:
        net = copy.deepcopy(net)
    for name, module in list(net.named_modules()):
        if isinstance(module, lora_layer):
            module.merge()
            parent, _, child = name.rpartition(".")
            setattr(net.get_submodule(parent), child, module.get_base_layer())
    net.requires_grad_(True)
    return net
