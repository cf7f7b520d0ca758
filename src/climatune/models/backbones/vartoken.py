"""Variable-token Vision Transformer (as ClimaX): one token group per input variable.

Its stem (:class:`~climatune.models.token_stem.VariableTokenStem`) patch-embeds each
variable on its own and adds an embedding of its name; here a learned query aggregates
each patch's variable tokens by cross-attention into one token, a position embedding is
added, a transformer trunk mixes the patches, and a linear decoder returns to cells.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from pydantic import PositiveFloat, PositiveInt
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from climatune.errors import ClimatuneError
from climatune.models.backbones.base import Backbone, Dropout, check_sizes
from climatune.models.backbones.vit import Block
from climatune.models.padding import check_edge_padding
from climatune.models.registry import register_backbone
from climatune.models.token_stem import VariableTokenStem

__all__ = ["VarTokenViT", "VariableAggregation"]

#: Features per attention head when ``heads`` is left out.
HEAD_DIM = 64


class VariableAggregation(nn.Module):
    """One token per patch from its variable tokens: a learned query cross-attends to them.

    Token groups whose patch holds no valid cell are left out of the attention (the
    network is told what is missing instead of reading zeros), unless every group of a
    patch is empty. A learned 2-D position embedding, resized bicubically to other
    grids, is added to the result unless ``grid`` is None (position then comes from the
    lat/lon encodings of the static token group alone, the same on any crop).
    """

    def __init__(self, dim: int, heads: int, grid: tuple[int, int] | None) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        self.norm = nn.LayerNorm(dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.q = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.query, std=0.02)
        self.pos: nn.Parameter | None = None
        if grid is not None:
            self.pos = nn.Parameter(torch.zeros(1, dim, *grid))
            nn.init.trunc_normal_(self.pos, std=0.02)

    def position(self, gh: int, gw: int) -> Tensor:
        """Position embedding ``[1, dim, gh, gw]``, interpolated if the grid differs."""
        if self.pos is None:
            raise ValueError("this aggregation has no grid position embedding")
        if self.pos.shape[-2:] == (gh, gw):
            return self.pos
        return F.interpolate(self.pos, size=(gh, gw), mode="bicubic", align_corners=False)

    def forward(self, groups: Tensor) -> Tensor:
        """``[B, G, dim + 1, gh, gw]`` (tokens and valid fraction) -> ``[B, gh*gw, dim]``."""
        b, g, _, gh, gw = groups.shape
        tokens, seen = groups[:, :, :-1], groups[:, :, -1]
        d = tokens.shape[2]
        x = tokens.permute(0, 3, 4, 1, 2).reshape(b * gh * gw, g, d)  # [B*N, G, dim]
        present = (seen > 0).permute(0, 2, 3, 1).reshape(b * gh * gw, 1, 1, g)
        present = present | ~present.any(dim=-1, keepdim=True)
        k, v = (
            self.kv(self.norm(x)).view(-1, g, 2, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        )
        q = (
            self.q(self.query)
            .view(1, self.heads, 1, d // self.heads)
            .expand(x.shape[0], -1, -1, -1)
        )
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=present)  # [B*N, heads, 1, hd]
        out = self.proj(out.reshape(b, gh * gw, d))
        if self.pos is None:
            return out
        return out + self.position(gh, gw).flatten(2).transpose(1, 2)


class _Decoder(nn.Module):
    """Tokens back to ``patch x patch`` cells of ``out_ch`` features."""

    def __init__(self, dim: int, out_ch: int, patch: int) -> None:
        super().__init__()
        self.patch = patch
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, out_ch * patch * patch)

    def forward(self, t: Tensor, gh: int, gw: int) -> Tensor:
        x = self.proj(self.norm(t)).transpose(1, 2).reshape(t.shape[0], -1, gh, gw)
        return F.pixel_shuffle(x, self.patch)


@register_backbone("vartoken_vit")
class VarTokenViT(Backbone):
    """Vision Transformer whose input is one token group per named variable.

    Any subset of the variables it knows, in any order, on any grid or regional crop,
    runs through the same weights: tokens are keyed by variable name, aggregated by a
    learned query, and placed by an interpolated position embedding. Attention is
    PyTorch's ``scaled_dot_product_attention``. The output has the padded grid's size;
    :class:`~climatune.models.net.ClimateNet` crops it to the input's.

    Parameters
    ----------
    width : int
        Output channels (:attr:`out_channels`), the head's input.
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
    heads : int, optional
        Attention heads; ``dim // 64`` (at least 1) by default.
    mlp_ratio : float
        MLP hidden size as a multiple of ``dim``.
    grid_position : bool
        A learned position embedding on the grid (interpolated to other grids); with
        false, patches are placed only by the lat/lon encodings among the static
        channels, which mean the same on every grid and regional crop.
    activation_checkpointing : bool
        Recompute each block's activations in the backward pass instead of storing
        them: less memory, about a third more compute.
    grid_shape : (int, int)
        The (lat, lon) size the position embedding is learned for; others interpolate it.

    Stages, input to output: the aggregation (with the position embedding), each block,
    the decoder. The per-variable patch embeddings are the stem's.
    """

    def __init__(
        self,
        width: PositiveInt = 32,
        depth: PositiveInt = 4,
        dropout: Dropout = 0.0,
        periodic_lon: bool = False,
        edge_padding: str = "zeros",
        patch: PositiveInt = 4,
        dim: PositiveInt | None = None,
        heads: PositiveInt | None = None,
        mlp_ratio: PositiveFloat = 4.0,
        grid_position: bool = True,
        activation_checkpointing: bool = False,
        grid_shape: Sequence[int] = (64, 128),
    ) -> None:
        super().__init__()
        check_sizes(width, depth, dropout)
        dim = dim or 4 * width
        heads = heads or max(1, dim // HEAD_DIM)
        if dim % heads:
            raise ClimatuneError(f"model.dim={dim} is not divisible by model.heads={heads}")
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
            "grid_position": bool(grid_position),
            "activation_checkpointing": bool(activation_checkpointing),
            "grid_shape": [int(n) for n in grid_shape],
        }
        self.patch, self.dim = patch, dim
        self.periodic_lon = periodic_lon
        self.edge_padding = edge_padding
        self.activation_checkpointing = bool(activation_checkpointing)
        self.out_channels = width
        self.aggregate = VariableAggregation(dim, heads, (gh, gw) if grid_position else None)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.decoder = _Decoder(dim, width, patch)

    def make_stem(self, variables: Sequence[str], history: int, n_static: int) -> VariableTokenStem:
        return VariableTokenStem(
            variables,
            history,
            n_static,
            width=self.out_channels,
            dim=self.dim,
            patch=self.patch,
            periodic_lon=self.periodic_lon,
            edge_padding=self.edge_padding,
        )

    @property
    def grid_multiple(self) -> int:
        return int(self.patch)

    def stages(self) -> list[nn.Module]:
        return [self.aggregate, *self.blocks, self.decoder]

    def forward_features(self, h: Tensor) -> Tensor:
        """Token groups ``[B, G, dim + 1, gh, gw]`` -> ``[B, width, gh * patch, gw * patch]``."""
        gh, gw = h.shape[-2:]
        t = self.aggregate(h)
        for block in self.blocks:
            if self.activation_checkpointing and self.training and torch.is_grad_enabled():
                t = checkpoint(block, t, use_reentrant=False)
            else:
                t = block(t)
        return self.decoder(t, gh, gw)
