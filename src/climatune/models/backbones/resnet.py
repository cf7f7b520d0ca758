"""ResNet backbone: residual blocks at full resolution, no down-sampling."""

from __future__ import annotations

from pydantic import PositiveInt
from torch import Tensor, nn

from climatune.models.backbones.base import Backbone, Dropout, cell_norm, check_sizes
from climatune.models.padding import GeoConv2d, check_edge_padding
from climatune.models.registry import register_backbone

__all__ = ["ResNet", "ResBlock"]


class ResBlock(nn.Module):
    """Pre-activation residual block: ``x + conv(act(norm(conv(act(norm(x))))))``."""

    def __init__(self, ch: int, *, dropout: float, periodic_lon: bool, edge_padding: str) -> None:
        super().__init__()
        geo = {"periodic_lon": periodic_lon, "edge_padding": edge_padding}
        self.body = nn.Sequential(
            cell_norm(ch),
            nn.GELU(),
            GeoConv2d(ch, ch, 3, **geo),
            cell_norm(ch),
            nn.GELU(),
            nn.Dropout2d(dropout) if dropout else nn.Identity(),
            GeoConv2d(ch, ch, 3, **geo),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


@register_backbone("resnet")
class ResNet(Backbone):
    """``depth`` stages of ``blocks`` residual blocks, all at the input resolution.

    Shift-equivariant in longitude for any shift when ``periodic_lon``. Its receptive
    field is local (``4 * depth * blocks + 1`` cells), so it suits downscaling and
    short-lead tasks more than large-scale teleconnections.

    Parameters
    ----------
    width : int
        Channels, also :attr:`out_channels`.
    depth : int
        Number of stages.
    dropout : float
        Channel dropout inside each block.
    periodic_lon : bool
        Circular padding in longitude, for global grids.
    edge_padding : {"zeros", "replicate"}
        Padding at non-periodic edges.
    blocks : int
        Residual blocks per stage.
    """

    def __init__(
        self,
        width: PositiveInt = 32,
        depth: PositiveInt = 3,
        dropout: Dropout = 0.0,
        periodic_lon: bool = False,
        edge_padding: str = "zeros",
        blocks: PositiveInt = 2,
    ) -> None:
        super().__init__()
        check_sizes(width, depth, dropout)
        self.hparams = {
            "width": width,
            "depth": depth,
            "dropout": dropout,
            "periodic_lon": periodic_lon,
            "edge_padding": check_edge_padding(edge_padding),
            "blocks": blocks,
        }
        self.periodic_lon = periodic_lon
        self.out_channels = width
        geo = {"dropout": dropout, "periodic_lon": periodic_lon, "edge_padding": edge_padding}
        self.blocks = nn.ModuleList(
            nn.Sequential(*(ResBlock(width, **geo) for _ in range(blocks))) for _ in range(depth)
        )
        self.norm = nn.Sequential(cell_norm(width), nn.GELU())

    def stages(self) -> list[nn.Module]:
        # The final norm belongs to the last stage, so freezing "all but the last" keeps it trainable.
        return [*self.blocks[:-1], nn.ModuleList([self.blocks[-1], self.norm])]

    def forward_features(self, h: Tensor) -> Tensor:
        for stage in self.blocks:
            h = stage(h)
        return self.norm(h)
