"""Registries of backbones and heads: ``@register_backbone``, ``@register_head``,
``create_backbone``, ``create_head``, ``list_backbones``, ``list_heads``.

Each backbone and head module registers its classes with the decorators, so the registry
is the only list of names (``climatune.models`` imports the built-in ones). A class's options
are its constructor's keyword parameters, less the ones in its ``data_options`` (filled
from the data by :func:`~climatune.models.net.build_net`, never set by the user).
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from climatune.errors import ClimatuneError, closest

if TYPE_CHECKING:
    from climatune.models.backbones.base import Backbone
    from climatune.models.heads import Head

__all__ = [
    "register_backbone",
    "create_backbone",
    "list_backbones",
    "backbone_class",
    "register_head",
    "create_head",
    "list_heads",
    "head_class",
    "options",
    "unknown_option",
]

_BACKBONES: dict[str, type[Backbone]] = {}
_HEADS: dict[str, type[Head]] = {}
_B = TypeVar("_B", bound="type[Backbone]")
_H = TypeVar("_H", bound="type[Head]")
_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def register_backbone(name: str) -> Callable[[_B], _B]:
    """Class decorator that registers a backbone under ``name``.

    Examples
    --------
    >>> @register_backbone("tiny")  # doctest: +SKIP
    ... class Tiny(Backbone): ...
    """

    def decorator(cls: _B) -> _B:
        _register(_BACKBONES, "backbone", name, cls)
        cls.backbone_name = name
        return cls

    return decorator


def register_head(kind: str) -> Callable[[_H], _H]:
    """Class decorator that registers a task head as ``kind``.

    Examples
    --------
    >>> @register_head("tiny")  # doctest: +SKIP
    ... class Tiny(Head): ...
    """

    def decorator(cls: _H) -> _H:
        _register(_HEADS, "head", kind, cls)
        cls.kind = kind
        return cls

    return decorator


def _register(table: dict[str, Any], what: str, name: str, cls: type) -> None:
    if name in table and table[name] is not cls:
        raise ValueError(f"{what} '{name}' is already registered by {table[name]}")
    table[name] = cls


def list_backbones(pattern: str = "*") -> list[str]:
    """Sorted names of the registered backbones matching a glob ``pattern``."""
    return sorted(n for n in _BACKBONES if fnmatch.fnmatchcase(n, pattern))


def list_heads(pattern: str = "*") -> list[str]:
    """Sorted kinds of the registered heads matching a glob ``pattern``."""
    return sorted(n for n in _HEADS if fnmatch.fnmatchcase(n, pattern))


def backbone_class(name: str) -> type[Backbone]:
    """The class registered under ``name``; a :class:`ClimatuneError` if there is none."""
    return _lookup(_BACKBONES, "backbone", name)


def head_class(kind: str) -> type[Head]:
    """The head class registered as ``kind``; a :class:`ClimatuneError` if there is none."""
    return _lookup(_HEADS, "head", kind)


def _lookup(table: dict[str, Any], what: str, name: str) -> Any:
    if name not in table:
        raise ClimatuneError(
            f"unknown {what} '{name}'{closest(name, table)}; choose one of: {', '.join(sorted(table))}"
        )
    return table[name]


def options(cls: type[Backbone] | type[Head]) -> dict[str, inspect.Parameter]:
    """The options a user sets on ``cls``: constructor keywords not in ``cls.data_options``.

    Their annotations are evaluated, so that a config can be checked against them.

    Examples
    --------
    >>> list(options(backbone_class("resnet")))
    ['width', 'depth', 'dropout', 'edge_padding', 'blocks']
    """
    return {
        name: p
        for name, p in inspect.signature(cls, eval_str=True).parameters.items()
        if p.kind in _KEYWORD and name not in cls.data_options
    }


def unknown_option(what: str, name: str, cls: type[Backbone] | type[Head], key: str) -> str:
    """The message for an option ``key`` that class ``cls`` (``what`` ``name``) lacks."""
    valid = list(options(cls))
    if key in cls.data_options:
        return f"{what} '{name}' gets '{key}' from the data; remove it"
    listed = f"its options are: {', '.join(valid)}" if valid else "it has no options"
    return f"{what} '{name}' has no option '{key}'{closest(key, valid)}; {listed}"


def _check_kwargs(
    what: str, name: str, cls: type[Backbone] | type[Head], kwargs: dict[str, Any]
) -> None:
    params = inspect.signature(cls).parameters
    for key in kwargs:
        if key not in params or params[key].kind not in _KEYWORD:
            raise ClimatuneError(unknown_option(what, name, cls, key))


def create_backbone(name: str, **kwargs: Any) -> Backbone:
    """Build the backbone ``name`` with keyword arguments ``kwargs``.

    Unknown names and unknown arguments raise a :class:`ClimatuneError` that names the
    closest valid choice.

    Examples
    --------
    >>> net = create_backbone("unet", width=16, depth=2)
    >>> net.out_channels
    16
    """
    cls = backbone_class(name)
    _check_kwargs("backbone", name, cls, kwargs)
    return cls(**kwargs)


def create_head(kind: str, in_ch: int, n_out: int, **kwargs: Any) -> Head:
    """Build a head of ``kind`` (``"field"``, ``"scalar"`` or ``"readout"``).

    Examples
    --------
    >>> import torch
    >>> create_head("scalar", 32, 1, hidden=16)(torch.zeros(2, 32, 5, 7)).shape
    torch.Size([2, 1])
    """
    cls = head_class(kind)
    _check_kwargs("head", kind, cls, kwargs)
    return cls(in_ch, n_out, **kwargs)
