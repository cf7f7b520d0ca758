"""Vision Transformer backbone: global attention over patches, full-resolution output."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from pydantic import PositiveFloat, PositiveInt
from torch import Tensor, nn

from climatune.models.backbones.base import Backbone, Dropout, check_sizes
from climatune.models.padding import check_edge_padding, crop, pad_to_multiple
from climatune.models.registry import register_backbone

__all__ = ["ViT", "PatchEmbed", "Block"]


class PatchEmbed(nn.Module):
    """Patches to tokens, plus a learned 2-D position embedding.

    The embedding is learned on the ``grid`` of patches the network was built for and
    resized bicubically when a different grid arrives (another domain or resolution).
    """

    def __init__(self, in_ch: int, dim: int, patch: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_ch, dim, patch, stride=patch)
        self.pos = nn.Parameter(torch.zeros(1, dim, *grid))
        nn.init.trunc_normal_(self.pos, std=0.02)

    def position(self, gh: int, gw: int) -> Tensor:
        """Position embedding ``[1, dim, gh, gw]``, interpolated if the grid differs."""
        if self.pos.shape[-2:] == (gh, gw):
            return self.pos
        return F.interpolate(self.pos, size=(gh, gw), mode="bicubic", align_corners=False)

    def forward(self, x: Tensor) -> Tensor:
        x = self.proj(x)
        x = x + self.position(*x.shape[-2:])
        return x.flatten(2).transpose(1, 2)  # [B, tokens, dim]


class Attention(nn.Module):
    """Multi-head self-attention with plain ``nn.Linear`` projections (LoRA-friendly)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} is not divisible by heads={heads}")
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        p = self.dropout if self.training else 0.0
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        return self.proj(x.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.drop(self.mlp(self.norm2(x)))


class _Decoder(nn.Module):
    def __init__(self, dim: int, out_ch: int, patch: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, out_ch * patch * patch)


@register_backbone("vit")
class ViT(Backbone):
    """Vision Transformer on ``patch x patch`` patches.

    Inputs are padded to a multiple of ``patch`` (circularly in longitude when
    ``periodic_lon``); tokens are projected back to pixels, cropped, and added to the
    input features, so the output has the full input resolution.

    Parameters
    ----------
    width : int
        Input and output channels (:attr:`out_channels`).
    depth : int
        Transformer blocks.
    dropout : float
        Dropout on attention, MLP and residual branches.
    periodic_lon : bool
        Circular padding in longitude, for global grids.
    edge_padding : {"zeros", "replicate"}
        Padding at non-periodic edges.
    patch : int
        Patch size in grid cells.
    dim : int, optional
        Token dimension; ``4 * width`` by default.
    heads : int
        Attention heads.
    mlp_ratio : float
        MLP hidden size as a multiple of ``dim``.
    grid_shape : (int, int)
        The (lat, lon) size the position embedding is learned for. Other sizes work:
        the embedding is interpolated.

    Stages, input to output: the patch embedding, each block, the decoder.
    """

    def __init__(
        self,
        width: PositiveInt = 32,
        depth: PositiveInt = 3,
        dropout: Dropout = 0.0,
        periodic_lon: bool = False,
        edge_padding: str = "zeros",
        patch: PositiveInt = 4,
        dim: PositiveInt | None = None,
        heads: PositiveInt = 4,
        mlp_ratio: PositiveFloat = 2.0,
        grid_shape: Sequence[int] = (64, 128),
    ) -> None:
        super().__init__()
        check_sizes(width, depth, dropout)
        dim = dim or 4 * width
        gh, gw = (-(-int(n) // patch) for n in grid_shape)
        self.hparams = {
            "width": width,
            "depth": depth,
            "dropout": dropout,
            "periodic_lon": periodic_lon,
            "edge_padding": check_edge_padding(edge_padding),
            "patch": patch,
            "dim": dim,
            "heads": heads,
            "mlp_ratio": mlp_ratio,
            "grid_shape": [int(n) for n in grid_shape],
        }
        self.patch = patch
        self.periodic_lon = periodic_lon
        self.edge_padding = edge_padding
        self.out_channels = width
        self.embed = PatchEmbed(width, dim, patch, (gh, gw))
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.decoder = _Decoder(dim, width, patch)

    @property
    def grid_multiple(self) -> int:
        return int(self.patch)

    def stages(self) -> list[nn.Module]:
        return [self.embed, *self.blocks, self.decoder]

    def forward_features(self, h: Tensor) -> Tensor:
        x, box = pad_to_multiple(
            h, self.patch, periodic_lon=self.periodic_lon, edge_padding=self.edge_padding
        )
        gh, gw = x.shape[-2] // self.patch, x.shape[-1] // self.patch
        t = self.embed(x)
        for block in self.blocks:
            t = block(t)
        t = self.decoder.proj(self.decoder.norm(t))  # [B, gh*gw, width*p*p]
        x = t.transpose(1, 2).reshape(h.shape[0], -1, gh, gw)
        x = F.pixel_shuffle(x, self.patch)  # [B, width, gh*p, gw*p]
        return h + crop(x, box)
