"""U-Net backbone, the default: multi-scale context, full-resolution output."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from pydantic import PositiveInt
from torch import Tensor, nn

from climatune.errors import ClimatuneError
from climatune.models.backbones.base import Backbone, ConvBlock, Dropout, check_sizes
from climatune.models.padding import check_edge_padding, crop, pad_to_multiple
from climatune.models.registry import register_backbone

__all__ = ["UNet"]


@register_backbone("unet")
class UNet(Backbone):
    """U-Net with ``depth`` down/up-sampling levels.

    Inputs of any size are padded to a multiple of ``2**depth`` (circularly in longitude
    when ``periodic_lon``) and the output is cropped back. Down-sampling is 2x2 max
    pooling and up-sampling is nearest-neighbour, both exact under longitude shifts by a
    multiple of ``2**depth``, so a periodic U-Net commutes with such shifts.

    Parameters
    ----------
    width : int
        Channels at full resolution, also :attr:`out_channels`.
    depth : int
        Number of down-sampling levels.
    dropout : float
        Channel dropout inside each block.
    periodic_lon : bool
        Circular padding in longitude, for global grids.
    edge_padding : {"zeros", "replicate"}
        Padding at non-periodic edges (latitude, and longitude of regional grids).
    mults : sequence of int, optional
        Channels of level ``i`` are ``width * mults[i]`` (``depth + 1`` numbers). The
        default, ``1, 1, 2, 4, 4, ...``, keeps the full-resolution levels cheap on CPU.

    Stages, input to output: ``enc0 .. enc{depth}`` (the last is the bottleneck), then
    ``dec{depth-1} .. dec0``.
    """

    def __init__(
        self,
        width: PositiveInt = 32,
        depth: PositiveInt = 3,
        dropout: Dropout = 0.0,
        periodic_lon: bool = False,
        edge_padding: str = "zeros",
        mults: Sequence[PositiveInt] | None = None,
    ) -> None:
        super().__init__()
        check_sizes(width, depth, dropout)
        if mults is None:
            mults = [min(2 ** max(i - 1, 0), 4) for i in range(depth + 1)]
        mults = [int(m) for m in mults]
        if len(mults) != depth + 1:
            raise ClimatuneError(f"unet needs depth + 1 = {depth + 1} mults, got {mults}")
        self.hparams = {
            "width": width,
            "depth": depth,
            "dropout": dropout,
            "periodic_lon": periodic_lon,
            "edge_padding": check_edge_padding(edge_padding),
            "mults": mults,
        }
        self.depth = depth
        self.periodic_lon = periodic_lon
        self.edge_padding = edge_padding
        self.out_channels = width
        geo = {"dropout": dropout, "periodic_lon": periodic_lon, "edge_padding": edge_padding}
        ch = [width * m for m in mults]
        self.enc = nn.ModuleList([ConvBlock(width, ch[0], **geo)])
        self.enc.extend(ConvBlock(ch[i - 1], ch[i], **geo) for i in range(1, depth + 1))
        # dec[i] takes level i+1 up to level i; stored in input-to-output order.
        self.dec = nn.ModuleList(
            ConvBlock(ch[i + 1] + ch[i], ch[i], **geo) for i in reversed(range(depth))
        )

    @property
    def grid_multiple(self) -> int:
        return int(2**self.depth)

    def stages(self) -> list[nn.Module]:
        return [*self.enc, *self.dec]

    def forward_features(self, h: Tensor) -> Tensor:
        x, box = pad_to_multiple(
            h, 2**self.depth, periodic_lon=self.periodic_lon, edge_padding=self.edge_padding
        )
        skips = []
        for i, block in enumerate(self.enc):
            x = block(F.max_pool2d(x, 2) if i else x)
            skips.append(x)
        skips.pop()
        for block in self.dec:
            skip = skips.pop()
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = block(torch.cat([x, skip], dim=1))
        return crop(x, box)
