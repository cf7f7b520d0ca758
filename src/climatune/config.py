"""Run configuration: YAML files validated by pydantic, with dotted ``--set`` overrides.

Every section forbids unknown keys, so a typo is an error that names the closest valid key.

Examples
--------
>>> cfg = load_config(None, ["task.kind=downscale", "trainer.max_epochs=1"])
>>> cfg.task.kind, cfg.trainer.max_epochs
('downscale', 1)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from climatune.errors import ClimatuneError, closest
from climatune.utils.bounded import check_small, load_yaml, read_text

__all__ = [
    "Config",
    "DataConfig",
    "TaskConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainerConfig",
    "FinetuneConfig",
    "ExplainConfig",
    "load_config",
    "dump_config",
    "apply_overrides",
]


class _Section(BaseModel):
    # NaN and infinity are never a valid setting: refuse them in every float field
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def _lightning_choices(kind: str) -> list[str]:
    """The accelerators, strategies or precisions that Lightning knows (imported lazily)."""
    if kind == "precision":
        from lightning.fabric.connector import _PRECISION_INPUT

        flat = [a for arg in get_args(_PRECISION_INPUT) for a in get_args(arg)]
        return list(dict.fromkeys(str(p) for p in flat))
    from lightning.pytorch.accelerators import AcceleratorRegistry
    from lightning.pytorch.strategies import StrategyRegistry

    if kind == "accelerator":
        return ["auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators())]
    return ["auto", *StrategyRegistry.available_strategies()]


def _choice(kind: str, value: str) -> str:
    names = _lightning_choices(kind)
    if value not in names:
        raise ValueError(f"unknown {kind}{closest(value, names)}; choose one of {', '.join(names)}")
    return value


class RegionConfig(_Section):
    """A lat/lon box in degrees; ``lon`` may cross 0° (e.g. ``[350, 20]``)."""

    lat: tuple[float, float]
    lon: tuple[float, float]
    halo: float = Field(0.0, ge=0, le=90, description="degrees of context read around the region")

    @model_validator(mode="after")
    def _a_box(self) -> RegionConfig:
        from climatune.data.regions import Region  # the one owner of what a box may be

        try:
            Region(*self.lat, *self.lon)
        except ClimatuneError as exc:
            raise ValueError(str(exc)) from None
        return self


class SplitConfig(_Section):
    """Contiguous blocks of years (inclusive); a sample belongs to a block only if every
    step it reads (inputs and target) lies in that block's years."""

    train: tuple[int, int] | list[tuple[int, int]]
    val: tuple[int, int]
    test: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> SplitConfig:
        for name in ("train", "val", "test"):
            value = getattr(self, name)
            blocks = value if isinstance(value, list) else [value]
            for block in blocks:
                if block is not None and block[0] > block[1]:
                    raise ValueError(f"{name} block {list(block)} starts after it ends")
        return self


class StaticConfig(_Section):
    """User-supplied static fields, such as orography, read from ``path``."""

    path: str
    variables: list[str]


class DataConfig(_Section):
    path: str | list[str] = "sample://A1B_north_america"
    variables: list[str] | None = None
    targets: list[str] | None = None
    levels: dict[str, list[float]] | None = None
    years: tuple[int, int] | None = None
    region: RegionConfig | None = None
    split: SplitConfig | None = None
    static: StaticConfig | None = None
    batch_size: int = Field(16, gt=0)
    num_workers: int = Field(0, ge=0)
    in_memory: Literal["auto", "always", "never"] = "auto"
    shuffle_buffer_chunks: int = Field(4, gt=0)
    train_fraction: float = Field(1.0, gt=0, le=1)


class IndexTargetConfig(_Section):
    """The scalar target of an ``index`` task: a variable of the data or of another file."""

    variable: str
    path: str | None = None
    region: RegionConfig | None = None


class TaskConfig(_Section):
    kind: Literal["forecast", "downscale", "index", "reconstruct"] = "forecast"
    history: int = Field(1, gt=0)
    lead: int = Field(1, ge=0)
    factor: int = Field(4, gt=1)
    mask_ratio: float = Field(0.5, gt=0, lt=1)
    patch: int = Field(4, gt=0)
    index: IndexTargetConfig | None = None


class ModelConfig(_Section):
    backbone: str = "unet"
    width: int = Field(32, gt=0)
    depth: int = Field(3, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    patch: int = Field(4, gt=0)
    heads: int = Field(4, gt=0)
    residual: bool = True

    @field_validator("backbone")
    @classmethod
    def _registered(cls, value: str) -> str:
        from climatune.models.registry import list_backbones

        names = list_backbones()
        if value not in names:
            raise ValueError(
                f"unknown backbone{closest(value, names)}; choose one of {', '.join(names)}"
            )
        return value


class OptimConfig(_Section):
    lr: float = 1e-3
    weight_decay: float = Field(1e-4, ge=0)
    warmup_fraction: float = Field(0.05, ge=0, lt=1)
    backbone_lr_scale: float = Field(1.0, gt=0)

    @field_validator("lr")
    @classmethod
    def _positive_lr(cls, value: float) -> float:
        if not 0 < value <= 1:
            raise ValueError("the learning rate must be positive and at most 1, e.g. 1e-3")
        return value


class TrainerConfig(_Section):
    max_epochs: int = Field(20, gt=0)
    max_steps: int = Field(-1, ge=-1, description="-1: no limit")
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    num_nodes: int = Field(1, gt=0)
    precision: str = "32-true"
    gradient_clip_val: float = Field(1.0, ge=0)
    patience: int = Field(5, gt=0)
    log_every_n_steps: int = Field(10, gt=0)
    progress_bar: bool = True
    limit_train_batches: float | int = Field(1.0, gt=0, description="a fraction or a count")
    record_samples: bool = False
    compile: bool = Field(
        False,
        description="torch.compile the network: fused kernels, several times faster on a "
        "GPU at large batches; the first steps pay for the compilation",
    )

    @field_validator("accelerator", "strategy", "precision", mode="before")
    @classmethod
    def _known(cls, value: Any, info: ValidationInfo) -> str:
        return _choice(str(info.field_name), str(value))  # YAML reads precision: 16 as an int

    @field_validator("devices")
    @classmethod
    def _devices(cls, value: int | str) -> int | str:
        text = str(value).replace(" ", "")
        if text == "auto" or (text not in ("0", "0,") and re.fullmatch(r"-1|\d+(,\d+)*,?", text)):
            return value
        raise ValueError("devices must be a count >= 1, -1 (all), 'auto' or GPU ids such as '0,1'")

    @field_validator("max_steps")
    @classmethod
    def _max_steps(cls, value: int) -> int:
        if value == 0:
            raise ValueError("max_steps must be -1 (no limit) or at least 1")
        return value

    @field_validator("limit_train_batches")
    @classmethod
    def _limit(cls, value: float | int) -> float | int:
        if isinstance(value, float) and value > 1:
            raise ValueError("limit_train_batches must be a fraction in (0, 1] or a whole count")
        return value


NormalizationChoice = Literal["auto", "keep", "refit", "force_keep"]


class NormalizationPolicy(_Section):
    """Per variable, whether fine-tuning keeps the pre-trained statistics or refits them.

    ``auto`` keeps them unless the new training data have clearly shifted (see
    :meth:`~climatune.data.normalize.Normalizer.shift`), and then refits and says so.
    ``keep`` refuses clearly shifted data; ``force_keep`` keeps the statistics anyway
    (a warmer scenario meant to be read as a warm anomaly) and says so. ``refit`` always
    refits on the new training years.
    """

    default: NormalizationChoice = "auto"
    variables: dict[str, NormalizationChoice] = Field(default_factory=dict)


class FinetuneConfig(_Section):
    strategy: Literal["full", "linear_probe", "ridge_probe", "partial", "gradual", "lora"] = "full"
    freeze_stages: int = Field(1, ge=0)
    unfreeze_epoch: int = Field(2, ge=0)
    lora_rank: int = Field(4, gt=0)
    lora_alpha: float = Field(8.0, gt=0)
    ridge_folds: int = Field(
        5, ge=2, description="blocks of training years that choose the ridge_probe penalty"
    )
    normalization: NormalizationPolicy = Field(default_factory=NormalizationPolicy)


class ExplainConfig(_Section):
    """Which climate component each input variable belongs to, when its CF
    standard_name does not say (e.g. ``{my_sst: ocean}``)."""

    components: dict[str, Literal["atmosphere", "ocean", "ice", "land", "other"]] = Field(
        default_factory=dict
    )


class Config(_Section):
    """A whole run: data, task, model, optimiser, trainer and fine-tuning settings."""

    seed: int = Field(0, ge=0, lt=2**32, description="numpy and torch accept 0 .. 2**32-1")
    data: DataConfig = Field(default_factory=DataConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    explain: ExplainConfig = Field(default_factory=ExplainConfig)


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


def _valid_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        annotation = field.annotation
        for candidate in getattr(annotation, "__args__", (annotation,)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                keys.extend(_valid_keys(candidate, f"{prefix}{name}."))
    return keys


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
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return ClimatuneError(
            f"unknown config key '{key}' in {source}{closest(key, _valid_keys(Config))}"
        )
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


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or the defaults), apply ``--set`` overrides and validate."""
    raw = _read_yaml(Path(path)) if path is not None else {}
    raw = apply_overrides(raw, overrides)
    return config_from_dict(raw, str(path) if path is not None else "--set")


def dump_config(cfg: Config) -> str:
    """The resolved config as YAML, loadable again by :func:`load_config`."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
