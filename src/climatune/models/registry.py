"""A registry of backbones: ``@register_backbone``, ``create_backbone``, ``list_backbones``.

Each backbone module registers itself with the decorator, so the registry is the only
list of names. The built-in backbones are imported on first use.
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from climatune.errors import ClimatuneError, closest

if TYPE_CHECKING:
    from climatune.models.backbones.base import Backbone

__all__ = ["register_backbone", "create_backbone", "list_backbones", "backbone_class"]

_BACKBONES: dict[str, type[Backbone]] = {}
_B = TypeVar("_B", bound="type[Backbone]")


def register_backbone(name: str) -> Callable[[_B], _B]:
    """Class decorator that registers a backbone under ``name``.

    Examples
    --------
    >>> @register_backbone("tiny")  # doctest: +SKIP
    ... class Tiny(Backbone): ...
    """

    def decorator(cls: _B) -> _B:
        if name in _BACKBONES and _BACKBONES[name] is not cls:
            raise ValueError(f"backbone '{name}' is already registered by {_BACKBONES[name]}")
        cls.backbone_name = name
        _BACKBONES[name] = cls
        return cls

    return decorator


def _load_builtins() -> None:
    import climatune.models.backbones  # noqa: F401  (registers unet, resnet, vit)


def list_backbones(pattern: str = "*") -> list[str]:
    """Sorted names of the registered backbones matching a glob ``pattern``."""
    _load_builtins()
    return sorted(n for n in _BACKBONES if fnmatch.fnmatchcase(n, pattern))


def backbone_class(name: str) -> type[Backbone]:
    """The class registered under ``name``; a :class:`ClimatuneError` if there is none."""
    _load_builtins()
    try:
        return _BACKBONES[name]
    except KeyError:
        raise ClimatuneError(
            f"unknown backbone '{name}'{closest(name, _BACKBONES)}; "
            f"choose one of: {', '.join(list_backbones())}"
        ) from None


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
    params = inspect.signature(cls).parameters
    for key in kwargs:
        if key not in params:
            valid = [p for p in params if params[p].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
            raise ClimatuneError(
                f"backbone '{name}' has no option '{key}'{closest(key, valid)}; "
                f"its options are: {', '.join(valid)}"
            )
    return cls(**kwargs)
