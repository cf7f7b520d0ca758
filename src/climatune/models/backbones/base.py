"""The contract every backbone follows, and the building blocks they share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar

from pydantic import Field
from torch import Tensor, nn

from climatune.errors import ClimatuneError
from climatune.models.padding import GeoConv2d
from climatune.models.stem import VariableStem
from climatune.models.token_stem import VariableTokenStem

__all__ = ["Backbone", "ConvBlock", "CellNorm", "cell_norm", "check_sizes", "Dropout"]

#: A dropout rate, as a constructor annotation the config validates against.
Dropout = Annotated[float, Field(ge=0, lt=1)]


class Backbone(nn.Module, ABC):
    """Abstract base class of the registered backbones.

    A backbone maps stem features ``[B, width, H, W]`` to ``[B, out_channels, H, W]`` at
    the full input resolution, for any H and W (a backbone with its own
    :meth:`make_stem` reads what that stem returns, and may return a grid padded
    centrally, which :class:`~climatune.models.net.ClimateNet` crops). Subclasses set :attr:`out_channels` and
    :attr:`hparams` (their resolved constructor arguments, JSON-able, enough to rebuild
    them) and implement :meth:`forward_features` and :meth:`stages`.

    Constructor keywords are the backbone's options (``model.*`` in the config), and
    their annotations are checked when a config is read. ``width`` is required: it is
    the stem's output. Keywords named in :attr:`data_options` are not options: they are
    filled from the data by :func:`~climatune.models.net.build_net`.
    """

    backbone_name: ClassVar[str] = ""
    data_options: ClassVar[frozenset[str]] = frozenset({"periodic_lon", "grid_shape"})
    out_channels: int
    hparams: dict[str, Any]
    periodic_lon: bool

    @abstractmethod
    def forward_features(self, h: Tensor) -> Tensor:
        """``[B, width, H, W] -> [B, out_channels, H, W]``."""

    @abstractmethod
    def stages(self) -> list[nn.Module]:
        """Modules from input to output that together hold every parameter once.

        Used to freeze the first N stages, unfreeze gradually and set layer-wise rates.
        """

    @property
    def grid_multiple(self) -> int:
        """The backbone pads its grid to a multiple of this many cells (1: never), centred
        as :func:`~climatune.models.padding.pad_to_multiple` does; its output is the same
        under shifts of the grid by a multiple of it, not under others."""
        return 1

    def forward(self, h: Tensor) -> Tensor:
        return self.forward_features(h)

    def make_stem(
        self, variables: Sequence[str], history: int, n_static: int
    ) -> VariableStem | VariableTokenStem:
        """The input stem this backbone reads: by default a :class:`VariableStem` that sums
        the variables into ``width`` features per cell. A backbone that reads variables
        as tokens returns its own (``vartoken_vit``)."""
        return VariableStem(variables, history, n_static, self.hparams["width"])

    def set_periodic_lon(self, periodic_lon: bool) -> None:
        """Switch circular longitude padding on or off (for a grid that is, or is not,
        global); no weight changes and :attr:`hparams` follows."""
        self.periodic_lon = bool(periodic_lon)
        self.hparams["periodic_lon"] = bool(periodic_lon)
        for module in self.modules():
            if isinstance(module, GeoConv2d):
                module.set_periodic_lon(periodic_lon)


def check_sizes(width: int, depth: int, dropout: float) -> None:
    """Refuse sizes no backbone can be built with."""
    if width < 1 or depth < 1 or not 0.0 <= dropout < 1.0:
        raise ClimatuneError(
            f"backbone needs width >= 1, depth >= 1 and 0 <= dropout < 1; "
            f"got width={width}, depth={depth}, dropout={dropout}"
        )


class CellNorm(nn.LayerNorm):
    """Layer normalisation over the channels of each grid cell.

    Unlike GroupNorm, its statistics never mix cells, so a network behaves the same on a
    regional crop as on the whole archive it was pre-trained on; like GroupNorm, it does
    not depend on the batch.
    """

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def cell_norm(channels: int) -> CellNorm:
    """A :class:`CellNorm` over ``channels``."""
    return CellNorm(channels)


class ConvBlock(nn.Sequential):
    """Two 3x3 geo-padded convolutions, each followed by a per-cell LayerNorm and GELU."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        *,
        dropout: float = 0.0,
        periodic_lon: bool = False,
        edge_padding: str = "zeros",
    ) -> None:
        geo = {"periodic_lon": periodic_lon, "edge_padding": edge_padding}
        super().__init__(
            GeoConv2d(in_ch, out_ch, 3, bias=False, **geo),
            cell_norm(out_ch),
            nn.GELU(),
            nn.Dropout2d(dropout) if dropout else nn.Identity(),
            GeoConv2d(out_ch, out_ch, 3, bias=False, **geo),
            cell_norm(out_ch),
            nn.GELU(),
        )
