"""Deep ensembles and MC dropout: several predictions from one model.

:class:`EnsembleNet` holds the members of a deep ensemble; its ``forward`` is their mean,
what every deterministic use of the model (metrics, attribution) sees, and
:meth:`EnsembleNet.forward_members` gives each member's prediction. :func:`mc_dropout`
turns a network's dropout on at inference, so that repeated calls draw samples.

Examples
--------
>>> import torch
>>> from climatune.models import build_net
>>> nets = [build_net("unet", ["tas"], history=1, n_static=0, n_out=1, width=4, depth=1)
...         for _ in range(3)]
>>> ens = EnsembleNet(nets).eval()
>>> x = torch.randn(2, 1, 1, 8, 8)
>>> ens.forward_members(x).shape
torch.Size([3, 2, 1, 8, 8])
>>> torch.allclose(ens(x), ens.forward_members(x).mean(0))
True
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from climatune.errors import ClimatuneError
from climatune.models.net import ClimateNet

__all__ = ["MAX_MEMBERS", "EnsembleNet", "dropout_modules", "mc_dropout", "members_of"]

#: The most members one artifact may hold (each is a whole network, trained in turn).
MAX_MEMBERS = 64


class EnsembleNet(nn.Module):
    """The members of a deep ensemble, networks of one architecture.

    Parameters
    ----------
    members
        At least two :class:`~climatune.models.net.ClimateNet` with the same spec.
    """

    def __init__(self, members: Sequence[ClimateNet]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        spec = members[0].spec()
        if any(m.spec() != spec for m in members[1:]):
            raise ClimatuneError("the members of an ensemble must share one architecture")
        self.members = nn.ModuleList(members)

    def __len__(self) -> int:
        return len(self.members)

    def spec(self) -> dict[str, Any]:
        """The members' shared architecture (:meth:`ClimateNet.spec`)."""
        return self.members[0].spec()  # type: ignore[operator]

    @property
    def distribution(self) -> str:
        """What each member's head predicts (:attr:`ClimateNet.distribution`)."""
        return str(self.members[0].distribution)

    def forward_members(self, fields: Tensor, static: Tensor | None = None, **kw: Any) -> Tensor:
        """Each member's prediction, stacked on a new first axis ``[members, ...]``."""
        return torch.stack([m(fields, static, **kw) for m in self.members])

    def forward_members_dist(
        self, fields: Tensor, static: Tensor | None = None, **kw: Any
    ) -> tuple[Tensor, Tensor | None]:
        """Each member's ``(mean, scale)`` (:meth:`ClimateNet.forward_dist`), stacked on a
        new first axis; the scale is None for deterministic members."""
        outs = [m.forward_dist(fields, static, **kw) for m in members_of(self)]
        means = torch.stack([mean for mean, _ in outs])
        scales = [scale for _, scale in outs]
        if any(s is None for s in scales):
            return means, None
        return means, torch.stack([s for s in scales if s is not None])

    def forward(self, fields: Tensor, static: Tensor | None = None, **kw: Any) -> Tensor:
        """The ensemble mean (of a mixture of Gaussians too: the mean of the members')."""
        return self.forward_members(fields, static, **kw).mean(0)


def members_of(net: nn.Module) -> list[ClimateNet]:
    """The networks of a model: an ensemble's members, or ``[net]``."""
    if isinstance(net, EnsembleNet):
        return [m for m in net.members if isinstance(m, ClimateNet)]
    assert isinstance(net, ClimateNet)
    return [net]


def dropout_modules(net: nn.Module) -> list[nn.Module]:
    """The modules of ``net`` that drop activations at training time (rate above 0).

    These are torch's dropout layers and modules that apply dropout themselves, with a
    float ``dropout`` attribute (the ViT's attention).
    """
    found: list[nn.Module] = []
    for module in net.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            if module.p > 0:
                found.append(module)
        else:
            rate = getattr(module, "dropout", None)
            if isinstance(rate, float) and rate > 0:
                found.append(module)
    return found


@contextmanager
def mc_dropout(net: nn.Module) -> Iterator[nn.Module]:
    """``net`` in eval mode with only its dropout on (Monte Carlo dropout).

    Normalisation layers keep their eval statistics. A network without dropout is
    refused: its samples would all be equal. The earlier train/eval modes are restored.
    """
    drops = dropout_modules(net)
    if not drops:
        raise ClimatuneError(
            "--samples needs a network with dropout, and this one has none (model dropout 0); "
            "train it with e.g. --set model.dropout=0.1, or train an ensemble (ensemble.members)"
        )
    modes = {m: m.training for m in net.modules()}
    net.eval()
    for module in drops:
        module.training = True
    try:
        yield net
    finally:
        for module, mode in modes.items():
            module.training = mode
