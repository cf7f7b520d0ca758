"""Lazy public names for packages whose modules are heavy to import (PEP 562)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, owners: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``owners[name]`` (a submodule) on first use.

    Examples
    --------
    >>> getattr_ = lazy_exports("climatune.utils", {"Section": "settings"})
    >>> getattr_("Section").__name__
    'Section'
    """

    def __getattr__(name: str) -> Any:
        if name not in owners:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{owners[name]}"), name)

    return __getattr__
