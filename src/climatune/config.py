"""Run configuration: YAML files validated by pydantic, with dotted ``--set`` overrides.

Every section forbids unknown keys, so a typo is an error that names the closest valid key.
Each section is defined by the layer that reads it (``climatune.data.settings``,
``climatune.models.settings``, ``climatune.training.settings``, ``climatune.finetune.settings``,
the ``explain`` section, here); :class:`Config` composes them, and only the workflow layer
and the command line see the whole of it.

Examples
--------
>>> cfg = load_config(None, ["task.kind=downscale", "trainer.max_epochs=1"])
>>> cfg.task.kind, cfg.trainer.max_epochs
('downscale', 1)
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from climatune.data.io import source_paths
from climatune.data.settings import DataConfig, TaskConfig
from climatune.data.sources import other_archive
from climatune.errors import ClimatuneError, closest
from climatune.finetune.settings import FinetuneConfig
from climatune.models.settings import ModelConfig
from climatune.training.settings import EnsembleConfig, OptimConfig, TrainerConfig
from climatune.utils.bounded import check_small, load_yaml, read_text
from climatune.utils.settings import Section

if TYPE_CHECKING:  # data.view still imports Config
    from climatune.inference import ArtifactMeta

__all__ = [
    "Config",
    "DataConfig",
    "TaskConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainerConfig",
    "EnsembleConfig",
    "FinetuneConfig",
    "ExplainConfig",
    "load_config",
    "dump_config",
    "apply_overrides",
    "model_config",
    "config_inputs",
]


class ExplainConfig(Section):
    """Which climate component each input variable belongs to, when its CF
    standard_name does not say (e.g. ``{my_sst: ocean}``)."""

    components: dict[str, Literal["atmosphere", "ocean", "ice", "land", "other"]] = Field(
        default_factory=dict
    )


class Config(Section):
    """A whole run: data, task, model, optimiser, trainer, fine-tuning and ensemble settings."""

    seed: int = Field(0, ge=0, lt=2**32, description="numpy and torch accept 0 .. 2**32-1")
    data: DataConfig = Field(default_factory=DataConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    ensemble: EnsembleConfig = Field(default_factory=EnsembleConfig)
    explain: ExplainConfig = Field(default_factory=ExplainConfig)


def config_inputs(cfg: Config) -> list[Path]:
    """Every file or store ``cfg`` reads: the data, the index series and the static fields."""
    sources: list = [s.path for s in cfg.data.sources] if cfg.data.sources else [cfg.data.path]
    if cfg.task.index is not None and cfg.task.index.path:
        sources.append(cfg.task.index.path)
    if cfg.data.static is not None:
        sources.append(cfg.data.static.path)
    return [p for s in sources for p in source_paths(s)]


_MAX_SET = 10_000  # characters in one --set KEY=VALUE


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ClimatuneError(f"config {path} does not exist")
    if path.is_dir():
        raise ClimatuneError(f"config {path} is a directory; give a YAML file")
    try:
        data = load_yaml(read_text(path, "config"), f"config {path}")
    except UnicodeDecodeError as exc:
        raise ClimatuneError(f"config {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ClimatuneError(
            f"config {path} must be a mapping of sections (data, task, model, ...)"
        )
    return data


def _sections(annotation: Any, prefix: str) -> list[tuple[type[BaseModel], str]]:
    """The config sections an annotation holds, with their key prefix: ``*.`` stands for
    the index of a list item (``data.sources.*.path``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, prefix)]
    if getattr(annotation, "__origin__", None) is list:
        prefix += "*."
    found = []
    for arg in getattr(annotation, "__args__", ()):
        found.extend(_sections(arg, prefix))
    return found


def _valid_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        for section, sub in _sections(field.annotation, f"{prefix}{name}."):
            keys.extend(_valid_keys(section, sub))
    return keys


def _unknown_key(key: str, source: str) -> ClimatuneError:
    """An unknown key, with the closest valid one (list indexes kept as written)."""
    parts = key.split(".")
    pattern = ".".join("*" if p.isdigit() else p for p in parts)
    hint = closest(pattern, _valid_keys(Config))
    for index in (p for p in parts if p.isdigit()):
        hint = hint.replace("*", index, 1)
    return ClimatuneError(f"unknown config key '{key}' in {source}{hint}")


def _key(loc: tuple[Any, ...]) -> list[str]:
    """An error's location as config keys, without pydantic's union-member tags
    (``literal['a','b']``, ``tuple[int, int]``)."""
    return [str(p) for p in loc if not (isinstance(p, str) and ("[" in p or p in _TAGS))]


#: pydantic's tags of the scalar members of a union (``str | GridSpec``: ``str``)
_TAGS = {"str", "int", "float", "bool", "none", "list", "dict"}


def apply_overrides(raw: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides; values are parsed as YAML (``1e-3``, ``[1, 2]``)."""
    for item in overrides or []:
        if len(item) > _MAX_SET:
            raise ClimatuneError(
                f"--set {item[:40]!r}... is {len(item):,} characters long, over the limit of "
                f"{_MAX_SET:,}; put large values in the config file"
            )
        if "=" not in item:
            raise ClimatuneError(
                f"--set {item!r} must look like key=value, e.g. trainer.max_epochs=1"
            )
        key, _, text = item.partition("=")
        try:
            value = yaml.safe_load(text) if text else None
        except (yaml.YAMLError, RecursionError):
            value = text
        check_small(value, f"--set {key}")
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return check_small(raw, "the config with its --set overrides")


def _explain(exc: ValidationError, source: str) -> ClimatuneError:
    errors = exc.errors()
    err, loc = errors[0], _key(errors[0]["loc"])
    for other in errors[1:]:  # a union: the member that looked inside the value says more
        deeper = _key(other["loc"])
        if len(deeper) > len(loc) and deeper[: len(loc)] == loc:
            err, loc = other, deeper
        elif deeper == loc and err["type"].endswith("_type") and other["type"] == "value_error":
            err = other  # a mapping checked by the model member, not by the str member
        elif err["type"] == "missing" and other["type"] == "extra_forbidden":
            if _key(other["loc"])[:-1] == loc[:-1]:  # a required key misspelt: name it
                err, loc = other, _key(other["loc"])
    key = ".".join(loc)
    if err["type"] == "extra_forbidden":
        return _unknown_key(key, source)
    msg = err["msg"].removeprefix("Value error, ")
    got = repr(err.get("input"))
    got = got if len(got) <= 80 else got[:77] + "..."
    return ClimatuneError(f"config key '{key}' in {source}: {msg} (got {got})")


def config_from_dict(raw: dict[str, Any], source: str = "config") -> Config:
    """Validate a plain mapping into a :class:`Config`."""
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise _explain(exc, source) from exc


def model_config(meta: ArtifactMeta, overrides: list[str] | None = None) -> Config:
    """The config a model was trained with (:attr:`ArtifactMeta.task` as its task), plus
    ``--set`` overrides; another archive than a multi-source model's is read as
    :func:`~climatune.data.sources.other_archive` says, with a note."""
    raw = apply_overrides(copy.deepcopy({**meta.data["config"], "task": meta.task}), overrides)
    if isinstance(raw.get("data"), dict):  # another archive than a multi-source model's
        keys = {item.partition("=")[0].strip() for item in overrides or []}
        for note in other_archive(raw["data"], keys, meta.data["grid"]):
            logging.getLogger("climatune").warning("%s", note)
    return config_from_dict(raw, "the model's config")


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or the defaults), apply ``--set`` overrides and validate."""
    raw = _read_yaml(Path(path)) if path is not None else {}
    raw = apply_overrides(raw, overrides)
    return config_from_dict(raw, str(path) if path is not None else "--set")


def dump_config(cfg: Config) -> str:
    """The resolved config as YAML, loadable again by :func:`load_config`."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
