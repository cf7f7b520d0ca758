"""The input stem of variable-token backbones: one token group per named variable.

Each input variable is patch-embedded on its own (its ``history`` steps and the fraction
of them that were valid), and a learned embedding of its name is added, so any subset of
the variables, in any order, reaches the same weights. The static channels form one more
token group. Like :class:`~climatune.models.stem.VariableStem`, fine-tuning keeps the
weights of shared variables, gives new ones fresh weights and removes dropped ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from climatune.errors import ClimatuneError, closest
from climatune.models.padding import check_edge_padding, pad_to_multiple
from climatune.models.stem import variable_key

__all__ = ["VariableTokenStem", "VariableToken"]


class VariableToken(nn.Module):
    """One variable's patch embedding (``proj``) and name embedding (``embed``)."""

    def __init__(self, in_ch: int, dim: int, patch: int, *, zero_init: bool) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_ch, dim, patch, stride=patch, bias=False)
        self.embed = nn.Parameter(torch.zeros(dim))
        nn.init.trunc_normal_(self.embed, std=0.02)
        if zero_init:
            nn.init.zeros_(self.proj.weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x) + self.embed.view(1, -1, 1, 1)


class VariableTokenStem(nn.Module):
    """Patch-embed each named variable, and the static channels, to a token group.

    The grid is padded to a multiple of ``patch`` (circularly in longitude when
    ``periodic_lon``); each variable's ``history`` steps, NaN set to 0, and the fraction
    of them that were valid (``history + 1`` channels) are projected by that variable's
    own ``patch x patch`` convolution, plus its name embedding.

    Parameters
    ----------
    variables : sequence of str
        Input variable names, in their default order.
    history : int
        Time steps per variable.
    n_static : int
        Static channels; they form one token group of their own.
    width : int
        The backbone's output channels (what :class:`ClimateNet` checks it against).
    dim : int
        Token dimension.
    patch : int
        Patch size in grid cells.
    periodic_lon, edge_padding
        Padding of the grid to a multiple of ``patch``.

    Examples
    --------
    >>> import torch
    >>> stem = VariableTokenStem(["tas", "psl"], 2, 3, width=8, dim=16, patch=4)
    >>> stem(torch.zeros(4, 2, 2, 10, 20), torch.zeros(4, 3, 10, 20)).shape
    torch.Size([4, 3, 17, 3, 5])
    """

    def __init__(
        self,
        variables: Sequence[str],
        history: int,
        n_static: int,
        *,
        width: int,
        dim: int,
        patch: int,
        periodic_lon: bool = False,
        edge_padding: str = "zeros",
    ) -> None:
        super().__init__()
        if history < 1 or n_static < 0 or min(width, dim, patch) < 1:
            raise ValueError(f"bad stem sizes: {history=}, {n_static=}, {width=}, {dim=}, {patch=}")
        self.history, self.n_static, self.width = history, n_static, width
        self.dim, self.patch = dim, patch
        self.periodic_lon = bool(periodic_lon)
        self.edge_padding = check_edge_padding(edge_padding)
        self._names: list[str] = []
        self.tokens = nn.ModuleDict()
        self.static: VariableToken | None = None
        self.add_variables(variables, zero_init=False)
        if n_static:
            self.static = VariableToken(n_static, dim, patch, zero_init=False)

    @property
    def variables(self) -> list[str]:
        """Input variable names, in the default order of ``forward``'s ``names``."""
        return list(self._names)

    #: Any subset of :attr:`variables` may be given (``forward``'s ``names``): a variable
    #: left out has no tokens, exactly as one whose cells are all missing.
    accepts_subset = True

    @property
    def in_channels_per_variable(self) -> int:
        """``history`` time steps plus one validity channel."""
        return self.history + 1

    def set_periodic_lon(self, periodic_lon: bool) -> None:
        """Pad longitude circularly (global grid) or by ``edge_padding``."""
        self.periodic_lon = bool(periodic_lon)

    def add_variables(self, names: Iterable[str], *, zero_init: bool = True) -> None:
        """Add input variables, appended to :attr:`variables`.

        Each gets a fresh name embedding; with ``zero_init`` (the default) its patch
        projection starts at zero, so its tokens carry only the name until training moves it.
        """
        names = list(names)
        dupes = [n for n in names if n in self._names or names.count(n) > 1]
        if dupes:
            raise ClimatuneError(f"input variable(s) {sorted(set(dupes))} are already in the stem")
        for name in names:
            token = VariableToken(
                self.in_channels_per_variable, self.dim, self.patch, zero_init=zero_init
            )
            ref = next(self.parameters(), None)
            if ref is not None:
                token = token.to(device=ref.device, dtype=ref.dtype)
            self.tokens[variable_key(name)] = token
            self._names.append(name)

    def drop_variables(self, names: Iterable[str]) -> None:
        """Remove input variables and their weights."""
        for name in list(names):
            if name not in self._names:
                raise ClimatuneError(
                    f"cannot drop input variable '{name}'{closest(name, self._names)}: "
                    f"the stem has {', '.join(self._names)}"
                )
            del self.tokens[variable_key(name)]
            self._names.remove(name)

    def reset_static(self, n_static: int, *, zero_init: bool = True) -> None:
        """Replace the static token group with fresh weights for ``n_static`` channels."""
        if n_static < 0:
            raise ValueError(f"n_static must be >= 0, not {n_static}")
        ref = next(self.parameters(), None)
        self.n_static = n_static
        self.static = None
        if n_static:
            token = VariableToken(n_static, self.dim, self.patch, zero_init=zero_init)
            if ref is not None:
                token = token.to(device=ref.device, dtype=ref.dtype)
            self.static = token

    def _check_names(self, names: Sequence[str]) -> None:
        """Any subset of :attr:`variables`, in any order, is accepted: a variable left out
        has no tokens, as one entirely missing (all NaN) has none in the aggregation."""
        extra = [n for n in names if n not in self._names]
        if extra or len(set(names)) != len(names):
            hint = "".join(closest(n, self._names) for n in extra[:1])
            raise ClimatuneError(
                f"input variables {list(names)} are not distinct variables of the network's "
                f"{self._names} (unexpected: {extra}){hint}; fine-tune the model to add inputs"
            )

    def _pad(self, x: Tensor) -> Tensor:
        return pad_to_multiple(
            x, self.patch, periodic_lon=self.periodic_lon, edge_padding=self.edge_padding
        )[0]

    def forward(
        self, fields: Tensor, static: Tensor | None = None, names: Sequence[str] | None = None
    ) -> Tensor:
        """Token groups of the inputs.

        Parameters
        ----------
        fields : Tensor
            ``[B, V, history, H, W]``, normalised, NaN where missing.
        static : Tensor, optional
            ``[B, n_static, H, W]`` or ``[n_static, H, W]``; NaN is read as 0.
        names : sequence of str, optional
            Variable order of ``fields``; defaults to :attr:`variables`. Any subset of
            them may be given.

        Returns
        -------
        Tensor
            ``[B, G, dim + 1, gh, gw]``: per token group (the variables in ``names``
            order, then the statics), ``dim`` token features and the fraction of the
            patch's cells and steps that were valid (1 for the statics). ``gh, gw`` are
            the padded grid's size in patches.
        """
        names = self._names if names is None else list(names)
        if fields.ndim != 5 or fields.shape[1] != len(names) or fields.shape[2] != self.history:
            raise ClimatuneError(
                f"fields must be [batch, {len(names)} variables, {self.history} steps, lat, lon], "
                f"got {list(fields.shape)}"
            )
        if names is not self._names:
            self._check_names(names)
        b, v, _, h, w = fields.shape
        valid = torch.isfinite(fields)
        x = torch.where(valid, fields, torch.zeros((), dtype=fields.dtype, device=fields.device))
        frac = valid.to(fields.dtype).mean(dim=2, keepdim=True)
        x = self._pad(torch.cat([x, frac], dim=2).flatten(1, 2))  # [B, V*(history+1), H', W']
        x = x.unflatten(1, (v, self.history + 1))
        groups = [self.tokens[variable_key(n)](x[:, i]) for i, n in enumerate(names)]
        # a patch's valid fraction: padding counts as missing
        pooled = F.avg_pool2d(x[:, :, -1], self.patch)  # [B, V, gh, gw]
        seen = list(pooled.unsqueeze(2).unbind(1))
        if self.static is not None:
            if static is None:
                raise ClimatuneError(
                    f"the network expects {self.n_static} static channels; none were given"
                )
            if static.ndim == 3:
                static = static.unsqueeze(0).expand(b, -1, -1, -1)
            if static.shape[-3] != self.n_static or static.shape[-2:] != (h, w):
                raise ClimatuneError(
                    f"static must be [batch, {self.n_static}, {h}, {w}], got {list(static.shape)}"
                )
            s = self._pad(torch.nan_to_num(static.to(fields.dtype), nan=0.0))
            groups.append(self.static(s))
            seen.append(
                torch.ones_like(seen[0]) if seen else s.new_ones(b, 1, *groups[0].shape[-2:])
            )
        if not groups:
            raise ClimatuneError("the network has no input variable and no static channel")
        tokens = torch.stack(groups, 1)  # [B, G, dim, gh, gw]
        return torch.cat([tokens, torch.stack(seen, 1).to(tokens.dtype)], dim=2)

    def extra_repr(self) -> str:
        return (
            f"variables={self._names}, history={self.history}, n_static={self.n_static}, "
            f"dim={self.dim}, patch={self.patch}"
        )
