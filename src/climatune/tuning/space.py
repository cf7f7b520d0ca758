"""Search spaces: a YAML mapping from dotted config keys to distributions.

Examples
--------
>>> space = parse_space({"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}})
>>> space["optim.lr"].kind
'float'
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from climatune.config import Config, config_from_dict
from climatune.errors import ClimatuneError, closest
from climatune.utils.bounded import load_yaml, read_text

__all__ = ["Param", "config_keys", "load_space", "parse_space", "suggest", "set_keys"]

_KINDS = ("float", "int", "categorical")
_FIELDS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}
#: Keys the folds own: tuning them would change which years are trained and scored.
_RESERVED = ("data.split", "data.years")


@dataclass(frozen=True)
class Param:
    """One tuned config key and its distribution."""

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def probes(self) -> list[Any]:
        """Values to check against the config: both ends and the middle, or every choice."""
        if self.kind == "categorical":
            return list(self.choices)
        mid = math.sqrt(self.low * self.high) if self.log else (self.low + self.high) / 2
        return [self.low, self.high, int(round(mid)) if self.kind == "int" else mid]


def config_keys(model: type[BaseModel] = Config, prefix: str = "") -> list[str]:
    """Every dotted key of a leaf setting (``optim.lr``, ``data.region.halo``, ...).

    A section whose keys depend on another (``model``: the options of each backbone)
    lists them with an ``option_keys`` class method.
    """
    keys = [prefix + k for k in getattr(model, "option_keys", list)()]
    for name, field in model.model_fields.items():
        annotation = field.annotation
        subs = [
            c
            for c in getattr(annotation, "__args__", (annotation,))
            if isinstance(c, type) and issubclass(c, BaseModel)
        ]
        if subs:
            keys += [k for sub in subs for k in config_keys(sub, f"{prefix}{name}.")]
        else:
            keys.append(prefix + name)
    return keys


def load_space(path: str | Path, base: dict[str, Any] | None = None) -> dict[str, Param]:
    """Read and check a search-space YAML file (see :func:`parse_space`)."""
    path = Path(path)
    if not path.is_file():
        raise ClimatuneError(f"--space {path} does not exist; give a YAML search-space file")
    try:
        raw = load_yaml(read_text(path, "--space"), f"--space {path}")
    except UnicodeDecodeError as exc:
        raise ClimatuneError(f"--space {path} is not valid YAML: {exc}") from exc
    return parse_space(raw, str(path), base)


def parse_space(
    raw: Any, source: str = "the search space", base: dict[str, Any] | None = None
) -> dict[str, Param]:
    """Check a ``{dotted.key: distribution}`` mapping and return its parameters.

    Each distribution is ``{type: float|int, low, high[, log][, step]}`` or
    ``{type: categorical, choices: [...]}``. Both ends (and the middle) of every range and
    every choice are validated against the config (``base``, or the defaults).
    """
    if not isinstance(raw, dict) or not raw:
        raise ClimatuneError(
            f"{source} must map config keys to distributions, e.g. "
            "optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}"
        )
    valid = config_keys()
    space = {}
    for key, spec in raw.items():
        key = str(key)
        if key not in valid:
            raise ClimatuneError(f"unknown config key '{key}' in {source}{closest(key, valid)}")
        if any(key == r or key.startswith(r + ".") for r in _RESERVED):
            raise ClimatuneError(
                f"'{key}' in {source} cannot be tuned: the folds choose the years; remove it"
            )
        space[key] = _param(key, spec, source)
    base = base if base is not None else Config().model_dump(mode="json")
    for param in space.values():
        for value in param.probes():
            cfg = config_from_dict(
                set_keys(base, {param.key: value}), f"{source} ({param.key}={value!r})"
            )
            got = _get(cfg.model_dump(), param.key)
            if param.kind == "float" and isinstance(got, int) and not isinstance(got, bool):
                raise ClimatuneError(
                    f"'{param.key}' in {source} is an integer setting; use type: int"
                )
    return space


def _get(raw: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        raw = raw[part]
    return raw


def _param(key: str, spec: Any, source: str) -> Param:
    where = f"'{key}' in {source}"
    if not isinstance(spec, dict) or spec.get("type") not in _KINDS:
        raise ClimatuneError(
            f"{where} must be a distribution with type float, int or categorical, "
            f"e.g. {{type: float, low: 0.0, high: 0.3}}; got {spec!r}"
        )
    kind = spec["type"]
    extra = set(spec) - _FIELDS[kind]
    if extra:
        name = sorted(extra)[0]
        raise ClimatuneError(
            f"{where}: unknown field '{name}' for type {kind}{closest(name, _FIELDS[kind])}"
        )
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ClimatuneError(f"{where}: categorical needs a non-empty list, choices: [a, b]")
        if not all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
            raise ClimatuneError(f"{where}: choices must be numbers, strings, booleans or null")
        if len(set(map(repr, choices))) != len(choices):
            raise ClimatuneError(f"{where}: choices {choices} repeat a value")
        return Param(key, kind, choices=tuple(choices))
    number = int if kind == "int" else (int, float)
    low, high, step = (
        _number(spec.get(k)) if kind == "float" else spec.get(k) for k in ("low", "high", "step")
    )
    log = spec.get("log", False)
    for name, value in (("low", low), ("high", high), ("step", step)):
        if (value is not None or name != "step") and (
            isinstance(value, bool) or not isinstance(value, number)
        ):
            raise ClimatuneError(
                f"{where}: {name} must be {'an integer' if kind == 'int' else 'a number'}; got {value!r}"
            )
    if not isinstance(log, bool):
        raise ClimatuneError(f"{where}: log must be true or false; got {log!r}")
    if low >= high:
        raise ClimatuneError(f"{where}: low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise ClimatuneError(f"{where}: a log range needs low > 0; got {low}")
    if step is not None and (step <= 0 or log):
        raise ClimatuneError(f"{where}: step must be positive and cannot go with log: true")
    if kind == "float":
        low, high, step = float(low), float(high), None if step is None else float(step)
    return Param(key, kind, low=low, high=high, log=log, step=step)


def _number(value: Any) -> Any:
    """YAML reads ``1e-4`` (no dot) as a string; accept it as the number it means."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def suggest(trial: Any, space: dict[str, Param]) -> dict[str, Any]:
    """Draw one value per parameter from an Optuna trial."""
    out: dict[str, Any] = {}
    for key, p in space.items():
        if p.kind == "categorical":
            out[key] = trial.suggest_categorical(key, list(p.choices))
        elif p.kind == "int":
            out[key] = trial.suggest_int(key, p.low, p.high, step=p.step or 1, log=p.log)
        else:
            out[key] = trial.suggest_float(key, p.low, p.high, step=p.step, log=p.log)
    return out


def set_keys(raw: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of the config mapping ``raw`` with each dotted key set to its value."""
    out = copy.deepcopy(raw)
    for key, value in params.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[leaf] = value
    return out
