"""The ``model`` config section: a registered backbone with its options, and the head's."""

from __future__ import annotations

import inspect
from typing import Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from climatune.errors import closest
from climatune.models.backbones.base import Backbone
from climatune.models.heads import Head
from climatune.models.registry import (
    backbone_class,
    head_class,
    list_backbones,
    list_heads,
    options,
    unknown_option,
)
from climatune.utils.settings import Section

__all__ = ["ModelConfig"]


class ModelConfig(Section):
    """The network: a registered backbone with its own options, and the head's options.

    ``backbone`` names a registered backbone; the section's other keys, except ``head``
    and ``residual``, are that backbone's options, checked against its constructor:
    ``width``, ``depth``, ``dropout``, ``edge_padding`` for every built-in one, with
    ``mults`` (unet), ``blocks`` (resnet), or ``patch``, ``dim``, ``heads``,
    ``mlp_ratio`` (vit, and vartoken_vit with ``activation_checkpointing``). Options left out take the constructor's default, and
    :attr:`options` holds them all. What comes from the data (``periodic_lon``,
    ``grid_shape``) is not set here.

    ``head`` holds the options of the head the task picks: a ``field`` head (no options)
    for gridded targets, a ``scalar`` head for an index (``hidden``, ``dropout``,
    ``norm``). ``residual`` makes a field forecast the change from the input field of
    the same variable. ``head_distribution`` is what the head predicts: ``none`` (a value
    per output, trained with the MSE) or ``gaussian`` (a mean and a positive scale per
    output, trained with the closed-form CRPS).

    A key that is an option of another backbone, at that backbone's default, is dropped,
    so configs written with every old field (``patch: 4`` under a unet) still load.

    Examples
    --------
    >>> m = ModelConfig(backbone="resnet", blocks=1, head={"hidden": 16})
    >>> m.options["blocks"], m.options["width"], m.head
    (1, 32, {'hidden': 16})
    """

    model_config = ConfigDict(extra="allow")

    backbone: str = "unet"
    residual: bool = True
    head: dict[str, Any] = Field(default_factory=dict)
    head_distribution: Literal["none", "gaussian"] = "none"

    @property
    def options(self) -> dict[str, Any]:
        """The backbone's options, every one resolved (the defaults filled in)."""
        return dict(self.__pydantic_extra__ or {})

    @classmethod
    def option_keys(cls) -> list[str]:
        """Every option key of every registered backbone and head (``head.`` prefixed)."""
        keys = {k for name in list_backbones() for k in options(backbone_class(name))}
        heads = {k for kind in list_heads() for k in options(head_class(kind))}
        return sorted(keys) + sorted(f"head.{k}" for k in heads)

    @field_validator("backbone")
    @classmethod
    def _registered(cls, value: str) -> str:
        names = list_backbones()
        if value not in names:
            raise ValueError(
                f"unknown backbone{closest(value, names)}; choose one of {', '.join(names)}"
            )
        return value

    @field_validator("head")
    @classmethod
    def _head_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        heads = [head_class(kind) for kind in list_heads()]
        valid = sorted({k for h in heads for k in options(h)})
        for key in value:
            if key not in valid:
                message = f"no head has an option '{key}'{closest(key, valid)}; they have: "
                raise _error((key,), message + ", ".join(valid), value[key])
        out = dict(value)
        for h in heads:
            given = {k: v for k, v in value.items() if k in options(h)}
            out.update({k: v for k, v in _validate(h, given).items() if k in given})
        return out

    @model_validator(mode="before")
    @classmethod
    def _backbone_options(cls, raw: Any) -> Any:
        name = (
            raw.get("backbone", cls.model_fields["backbone"].default)
            if isinstance(raw, dict)
            else None
        )
        if name not in list_backbones():
            return raw  # not a mapping, or the backbone's own validator names the closest
        mine = backbone_class(name)
        own = {k: v for k, v in raw.items() if k in cls.model_fields}
        given = {k: v for k, v in raw.items() if k not in cls.model_fields}
        for key, value in list(given.items()):
            if key in options(mine):
                continue
            owners = [b for b in list_backbones() if key in options(backbone_class(b))]
            if any(options(backbone_class(b))[key].default == value for b in owners):
                del given[key]  # another backbone's option at its default: no intent in it
            elif owners:
                raise _error(
                    (key,),
                    f"'{key}' is an option of backbone {' and '.join(map(repr, owners))}, not of "
                    f"'{name}'; remove it or set model.backbone: {owners[0]}",
                    value,
                )
            else:
                raise _error((key,), unknown_option("backbone", name, mine, key), value)
        return {**own, **_validate(mine, given)}


def _validate(cls: type[Backbone] | type[Head], given: dict[str, Any]) -> dict[str, Any]:
    """``given`` options of ``cls`` checked against its annotations, the rest defaulted."""
    return _options_model(cls).model_validate(given).model_dump(mode="json")


_OPTION_MODELS: dict[type, type[Section]] = {}


def _options_model(cls: type[Backbone] | type[Head]) -> type[Section]:
    """A pydantic model of ``cls``'s options, with their annotations and defaults (cached)."""
    if cls not in _OPTION_MODELS:
        fields: dict[str, Any] = {
            name: (
                Any if p.annotation is inspect.Parameter.empty else p.annotation,
                ... if p.default is inspect.Parameter.empty else p.default,
            )
            for name, p in options(cls).items()
        }
        _OPTION_MODELS[cls] = create_model(f"{cls.__name__}Options", __base__=Section, **fields)
    return _OPTION_MODELS[cls]


def _error(loc: tuple[str, ...], message: str, value: Any) -> ValidationError:
    """A validation error at ``loc`` (inside ``model``) whose message is ``message``."""
    return ValidationError.from_exception_data(
        "ModelConfig",
        [
            {
                "type": PydanticCustomError("model_option", "{message}", {"message": message}),
                "loc": loc,
                "input": value,
            }
        ],
    )
