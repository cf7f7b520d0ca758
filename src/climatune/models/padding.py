"""Padding for geographic grids: periodic in longitude, zeros or replicate elsewhere.

On a global grid the last column (lon 358°) neighbours the first (lon 0°), so convolutions
pad longitude circularly. Latitude (and longitude on regional grids) has real edges, padded
with zeros or by replicating the edge row: ``edge_padding``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from climatune.errors import ClimatuneError, closest

__all__ = [
    "EDGE_PADDINGS",
    "check_edge_padding",
    "geo_pad",
    "pad_to_multiple",
    "crop",
    "GeoPad2d",
    "GeoConv2d",
    "lon_padding",
    "periodic_lon",
]

EDGE_PADDINGS = ("zeros", "replicate")


def check_edge_padding(edge_padding: str) -> str:
    """Validate ``edge_padding``; a :class:`ClimatuneError` names the valid modes."""
    if edge_padding not in EDGE_PADDINGS:
        raise ClimatuneError(
            f"edge_padding must be one of {', '.join(EDGE_PADDINGS)}, not {edge_padding!r}"
            f"{closest(str(edge_padding), EDGE_PADDINGS)}"
        )
    return edge_padding


def _wrap_lon(x: Tensor, left: int, right: int) -> Tensor:
    w = x.shape[-1]
    if left <= w and right <= w:
        return torch.cat([x[..., w - left :], x, x[..., :right]], dim=-1)
    idx = torch.arange(-left, w + right, device=x.device) % w
    return x.index_select(-1, idx)


def geo_pad(
    x: Tensor,
    top: int,
    bottom: int,
    left: int,
    right: int,
    *,
    periodic_lon: bool,
    edge_padding: str = "zeros",
) -> Tensor:
    """Pad ``x[..., lat, lon]``: circularly in lon if ``periodic_lon``, else by ``edge_padding``."""
    mode = "constant" if edge_padding == "zeros" else "replicate"
    if left or right:
        x = _wrap_lon(x, left, right) if periodic_lon else F.pad(x, (left, right, 0, 0), mode=mode)
    if top or bottom:
        x = F.pad(x, (0, 0, top, bottom), mode=mode)
    return x


def pad_to_multiple(
    x: Tensor, multiple: int, *, periodic_lon: bool, edge_padding: str = "zeros"
) -> tuple[Tensor, tuple[int, int, int, int]]:
    """Pad ``x[B, C, H, W]`` so H and W are multiples of ``multiple``.

    Returns the padded tensor and ``(top, left, H, W)`` for :func:`crop`.
    """
    h, w = x.shape[-2:]
    dh, dw = -h % multiple, -w % multiple
    top, left = dh // 2, dw // 2
    x = geo_pad(
        x, top, dh - top, left, dw - left, periodic_lon=periodic_lon, edge_padding=edge_padding
    )
    return x, (top, left, h, w)


def crop(x: Tensor, box: tuple[int, int, int, int]) -> Tensor:
    """Undo :func:`pad_to_multiple`."""
    top, left, h, w = box
    return x[..., top : top + h, left : left + w]


class GeoPad2d(nn.Module):
    """Pad ``lat`` rows and ``lon`` columns on each side; longitude wraps if ``periodic_lon``."""

    def __init__(
        self, lat: int, lon: int, periodic_lon: bool = False, edge_padding: str = "zeros"
    ) -> None:
        super().__init__()
        self.lat, self.lon = lat, lon
        self.periodic_lon = periodic_lon
        self.edge_padding = check_edge_padding(edge_padding)

    def forward(self, x: Tensor) -> Tensor:
        a, o = self.lat, self.lon
        return geo_pad(
            x, a, a, o, o, periodic_lon=self.periodic_lon, edge_padding=self.edge_padding
        )

    def extra_repr(self) -> str:
        return (
            f"lat={self.lat}, lon={self.lon}, periodic_lon={self.periodic_lon}, "
            f"edge_padding={self.edge_padding!r}"
        )


class GeoConv2d(nn.Module):
    """A "same" convolution padded periodically in longitude when ``periodic_lon``.

    The convolution is a plain ``nn.Conv2d`` (attribute ``conv``), so tools that wrap
    Conv2d layers, such as LoRA, see an ordinary layer. Zero padding is left to the
    convolution itself (it is cheaper); wrapping and replication are done by ``pad``.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        *,
        periodic_lon: bool = False,
        edge_padding: str = "zeros",
        bias: bool = True,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, not {kernel_size}")
        self.pad = GeoPad2d(0, 0, periodic_lon, edge_padding)
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, bias=bias)
        self.set_periodic_lon(periodic_lon)

    def set_periodic_lon(self, periodic_lon: bool) -> None:
        """Switch longitude between circular and edge padding; weights are unchanged."""
        if type(self.conv) is not nn.Conv2d:
            raise ClimatuneError("change periodic_lon before adding LoRA adapters, not after")
        p = self.conv.kernel_size[0] // 2
        zeros = self.pad.edge_padding == "zeros"
        conv_lat = p if zeros else 0
        conv_lon = p if zeros and not periodic_lon else 0
        self.conv.padding = (conv_lat, conv_lon)
        self.pad.lat, self.pad.lon = p - conv_lat, p - conv_lon
        self.pad.periodic_lon = bool(periodic_lon)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.pad(x))


def periodic_lon(net: nn.Module) -> bool:
    """Whether a network (with a ``backbone``) pads longitude circularly."""
    return bool(getattr(getattr(net, "backbone", None), "periodic_lon", False))


@contextmanager
def lon_padding(net: nn.Module, periodic: bool) -> Iterator[None]:
    """Inside the block, ``net`` pads longitude circularly or not (``periodic``), then as before.

    A window narrower than the global grid a network was trained on has real east and
    west edges: its convolutions must not wrap one onto the other. ``net`` switches
    with its ``set_periodic_lon``; nothing is done when it already pads so.
    """
    before = periodic_lon(net)
    if before == periodic:
        yield
        return
    net.set_periodic_lon(periodic)  # type: ignore[operator]
    try:
        yield
    finally:
        net.set_periodic_lon(before)  # type: ignore[operator]
