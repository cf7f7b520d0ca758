"""The input stem, keyed by variable name.

Each input variable has its own 1x1 convolution, and so do the static channels; their
outputs are summed into ``width`` features. Fine-tuning can therefore keep the weights of
shared variables, give new variables fresh weights and remove dropped ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from climatune.errors import ClimatuneError, closest

__all__ = ["VariableStem"]

_RESERVED = set(dir(nn.ModuleDict()))


def _key(name: str) -> str:
    """Module key of a variable: ``nn.ModuleDict`` forbids '.', '' and attribute names."""
    if not name:
        raise ClimatuneError("a variable name is empty; give every input variable a name")
    key = name.replace("%", "%25").replace(".", "%2E")
    return "%" + key if key in _RESERVED else key


#: The module key of a variable name (shared with the variable-token stem).
variable_key = _key


class VariableStem(nn.Module):
    """Project named input variables and static channels to ``width`` features.

    Each variable gets ``history + 1`` input channels: its ``history`` time steps, with
    NaN cells set to 0 (the normalised mean), and the fraction of those steps that were
    valid. A network therefore sees where data is missing, such as land in an SST field.

    Parameters
    ----------
    variables : sequence of str
        Input variable names, in their default order.
    history : int
        Time steps per variable.
    n_static : int
        Static channels (lat/lon encodings, land-sea mask, user statics), in a fixed order.
    width : int
        Output features.

    Examples
    --------
    >>> import torch
    >>> stem = VariableStem(["tas", "psl"], history=2, n_static=3, width=8)
    >>> stem(torch.zeros(4, 2, 2, 10, 20), torch.zeros(4, 3, 10, 20)).shape
    torch.Size([4, 8, 10, 20])
    """

    def __init__(self, variables: Sequence[str], history: int, n_static: int, width: int) -> None:
        super().__init__()
        if history < 1 or n_static < 0 or width < 1:
            raise ValueError(f"bad stem sizes: {history=}, {n_static=}, {width=}")
        self.history = history
        self.n_static = n_static
        self.width = width
        self._names: list[str] = []
        self.proj = nn.ModuleDict()
        self.static = nn.Conv2d(n_static, width, 1, bias=False) if n_static else None
        self.bias = nn.Parameter(torch.zeros(width))
        self.add_variables(variables, zero_init=False)

    @property
    def variables(self) -> list[str]:
        """Input variable names, in the default order of ``forward``'s ``names``."""
        return list(self._names)

    #: Every variable's projection is summed in: the stem needs all of them (any order).
    accepts_subset = False

    @property
    def in_channels_per_variable(self) -> int:
        """``history`` time steps plus one validity channel."""
        return self.history + 1

    def add_variables(self, names: Iterable[str], *, zero_init: bool = True) -> None:
        """Add input variables with fresh weights, appended to :attr:`variables`.

        With ``zero_init`` (the default) the new weights are zero, so the network's
        output is unchanged until training moves them.
        """
        names = list(names)
        dupes = [n for n in names if n in self._names or names.count(n) > 1]
        if dupes:
            raise ClimatuneError(f"input variable(s) {sorted(set(dupes))} are already in the stem")
        ref = self.bias
        for name in names:
            conv = nn.Conv2d(self.in_channels_per_variable, self.width, 1, bias=False)
            conv = conv.to(device=ref.device, dtype=ref.dtype)
            if zero_init:
                nn.init.zeros_(conv.weight)
            self.proj[_key(name)] = conv
            self._names.append(name)

    def drop_variables(self, names: Iterable[str]) -> None:
        """Remove input variables and their weights."""
        for name in list(names):
            if name not in self._names:
                raise ClimatuneError(
                    f"cannot drop input variable '{name}'{closest(name, self._names)}: "
                    f"the stem has {', '.join(self._names)}"
                )
            del self.proj[_key(name)]
            self._names.remove(name)

    def reset_static(self, n_static: int, *, zero_init: bool = True) -> None:
        """Replace the static projection with fresh weights for ``n_static`` channels.

        With ``zero_init`` (the default) statics contribute nothing until training moves
        the new weights, so the rest of a pre-trained network behaves as before.
        """
        if n_static < 0:
            raise ValueError(f"n_static must be >= 0, not {n_static}")
        self.n_static = n_static
        if not n_static:
            self.static = None
            return
        conv = nn.Conv2d(n_static, self.width, 1, bias=False)
        if zero_init:
            nn.init.zeros_(conv.weight)
        self.static = conv.to(device=self.bias.device, dtype=self.bias.dtype)

    def _check_names(self, names: Sequence[str]) -> None:
        missing = [n for n in self._names if n not in names]
        extra = [n for n in names if n not in self._names]
        if missing or extra or len(set(names)) != len(names):
            hint = "".join(closest(n, missing) for n in extra[:1])
            raise ClimatuneError(
                f"input variables {list(names)} do not match the network's {self._names} "
                f"(missing: {missing}, unexpected: {extra}){hint}; fine-tune the model to "
                "adapt its inputs"
            )

    def forward(
        self, fields: Tensor, static: Tensor | None = None, names: Sequence[str] | None = None
    ) -> Tensor:
        """Project the inputs to features.

        Parameters
        ----------
        fields : Tensor
            ``[B, V, history, H, W]``, normalised, NaN where missing; variable ``v`` is
            ``names[v]``.
        static : Tensor, optional
            ``[B, n_static, H, W]`` or ``[n_static, H, W]`` (shared by the batch). Required
            when ``n_static > 0``. NaN is read as 0.
        names : sequence of str, optional
            Variable order of ``fields``; defaults to :attr:`variables`. Any order of the
            same set of names is accepted.

        Returns
        -------
        Tensor
            ``[B, width, H, W]``.
        """
        names = self._names if names is None else list(names)
        if fields.ndim != 5 or fields.shape[1] != len(names) or fields.shape[2] != self.history:
            raise ClimatuneError(
                f"fields must be [batch, {len(names)} variables, {self.history} steps, lat, lon], "
                f"got {list(fields.shape)}"
            )
        if names is not self._names:
            self._check_names(names)
        b, _, _, h, w = fields.shape
        valid = torch.isfinite(fields)
        x = torch.where(valid, fields, torch.zeros((), dtype=fields.dtype, device=fields.device))
        frac = valid.to(fields.dtype).mean(dim=2, keepdim=True)
        x = torch.cat([x, frac], dim=2)  # [B, V, history + 1, H, W]
        out = self.bias.view(1, -1, 1, 1).expand(b, -1, h, w)
        for v, name in enumerate(names):
            out = out + self.proj[_key(name)](x[:, v])
        if self.static is not None:
            if static is None:
                raise ClimatuneError(
                    f"the network expects {self.n_static} static channels; none were given"
                )
            if static.ndim == 3:
                static = static.unsqueeze(0)
            if static.shape[-3] != self.n_static or static.shape[-2:] != fields.shape[-2:]:
                raise ClimatuneError(
                    f"static must be [batch, {self.n_static}, {h}, {w}], got {list(static.shape)}"
                )
            out = out + self.static(torch.nan_to_num(static.to(out.dtype), nan=0.0))
        return out

    def extra_repr(self) -> str:
        return f"variables={self._names}, history={self.history}, n_static={self.n_static}"
