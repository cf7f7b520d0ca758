"""Read small YAML and JSON documents with bounded time and memory.

A config, a search space or ``--set`` value is a few kilobytes. A file that is huge, nested
thousands of levels deep, or that expands through YAML aliases into millions of nodes (a
"billion laughs" bomb: a few hundred bytes that reference each other) is refused with one
line before anything walks, validates or prints it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from climatune.errors import ClimatuneError

__all__ = ["read_text", "load_yaml", "load_json", "check_small", "MAX_NODES", "MAX_DEPTH"]

MAX_NODES = 100_000  # values in a document once its aliases are expanded
MAX_DEPTH = 64  # nesting of mappings and lists
CONFIG_BYTES = 1 << 20  # configs, search spaces, stamps


def read_text(path: Path, what: str, max_bytes: int = CONFIG_BYTES) -> str:
    """The text of ``path``, refused (without reading it all) when over ``max_bytes``."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ClimatuneError(
            f"{what} {path} is {size / 2**20:.1f} MiB, over the limit of "
            f"{max_bytes / 2**20:g} MiB for such a file; give the right file"
        )
    with path.open("rb") as fh:
        data = fh.read(max_bytes + 1)  # the file may grow while it is read
    if len(data) > max_bytes:
        raise ClimatuneError(f"{what} {path} is over the limit of {max_bytes / 2**20:g} MiB")
    return data.decode("utf-8")


def check_small(value: Any, what: str) -> Any:
    """Refuse a parsed document with over :data:`MAX_NODES` values or :data:`MAX_DEPTH` levels.

    Shared references (YAML aliases) count once per use, so an alias bomb is caught after at
    most ``MAX_NODES`` steps, however large it would expand.
    """
    stack = [(value, 0)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise ClimatuneError(
                f"{what} holds over {MAX_NODES:,} values (YAML aliases expanded); refusing it"
            )
        if isinstance(node, (dict, list, tuple)):
            if depth >= MAX_DEPTH:
                raise ClimatuneError(f"{what} is nested over {MAX_DEPTH} levels deep; refusing it")
            items = (x for kv in node.items() for x in kv) if isinstance(node, dict) else iter(node)
            stack.extend((child, depth + 1) for child in items)
            if len(stack) > MAX_NODES:
                raise ClimatuneError(f"{what} holds over {MAX_NODES:,} values; refusing it")
    return value


def load_yaml(text: str, what: str) -> Any:
    """``yaml.safe_load`` with the limits of :func:`check_small`; errors are one line."""
    try:
        value = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark  # one line, not YAML's multi-line snippet
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ClimatuneError(f"{what} is not valid YAML{where}: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise ClimatuneError(f"{what} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    except RecursionError:
        raise ClimatuneError(f"{what} is nested too deeply; refusing it") from None
    return check_small(value, what)


def load_json(text: str, what: str) -> Any:
    """``json.loads`` refusing documents nested too deeply; errors are one line."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ClimatuneError(f"{what} is nested too deeply; refusing it") from None
    except ValueError as exc:
        raise ClimatuneError(f"{what} is not valid JSON: {str(exc).splitlines()[0]}") from exc
    return value
