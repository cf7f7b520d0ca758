"""The package's layers: each subpackage imports only from the layers below it.

``docs/architecture.md`` draws the same picture; change both together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "climatune"

#: Bottom to top. A package may import from any lower layer; packages on one layer
#: may not import each other.
LAYERS: list[set[str]] = [
    {"errors"},
    {"utils"},
    {"data"},
    {"models"},
    {"inference"},
    {"training", "evaluation", "report"},
    {"finetune"},
    {"config"},
    {"explain"},
    {"workflows"},
    {"tuning"},
    {"cli", "testing"},
    {"__main__"},
]
LAYER_OF = {name: level for level, names in enumerate(LAYERS) for name in names}


def _unit(module: str) -> str | None:
    """The top-level unit (subpackage or module) of ``climatune.x.y``; None for the root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "climatune" else None


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every climatune module imported by ``path``, at any depth (function bodies included)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
    return [(line, t) for line, t in found if t == "climatune" or t.startswith("climatune.")]


def _units() -> set[str]:
    return {
        p.stem if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if p.suffix == ".py" or (p / "__init__.py").exists()
    } - {"__init__"}


def test_every_unit_has_a_layer():
    assert _units() - set(LAYER_OF) == set(), "add the new package to LAYERS (and the docs)"


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_imports_go_down_the_layers(path):
    own = _unit(_module_name(path))
    if own is None:  # climatune/__init__.py: the version and the lazy load_model
        return
    wrong = []
    for line, target in _imports(path):
        unit = _unit(target)
        if unit is None or unit == own:
            continue
        if LAYER_OF[unit] >= LAYER_OF[own]:
            wrong.append(f"line {line}: {target} ({unit}, layer {LAYER_OF[unit]})")
    assert not wrong, f"{own} (layer {LAYER_OF[own]}) imports upwards or sideways: {wrong}"
