"""Model artifacts: ``model/weights.safetensors`` plus ``model/climatune.json``, and for a
model normalised in anomalies ``model/normalization.safetensors`` (its climatology).

This module owns the files: writing, reading, validating and migrating them. Loading never
unpickles: weights come from safetensors and everything else from JSON, validated field by
field. Older schema versions are migrated on load.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import xarray as xr
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from climatune import __version__
from climatune.data.settings import DataConfig, TaskConfig
from climatune.errors import ClimatuneError, closest
from climatune.models.ensemble import MAX_MEMBERS, EnsembleNet
from climatune.models.net import ClimateNet
from climatune.utils.atomic import atomic_path
from climatune.utils.bounded import load_json, read_text
from climatune.utils.settings import Section

__all__ = [
    "CLIMATOLOGY",
    "SCHEMA_VERSION",
    "TASK_KEYS",
    "ArtifactMeta",
    "model_paths",
    "read_artifact",
    "read_meta",
    "resolve_device",
    "resolve_model_dir",
    "save_artifact",
    "variable_records",
]

SCHEMA_VERSION = 3  # 1: provenance; 2: the residual in the net spec, the task stored once;
# 3: ensembles (``members``; member k >= 1 has its weights under ``member.k.``)
WEIGHTS, META = "weights.safetensors", "climatune.json"
#: Anomaly normalisation's climatology, one ``(12, ...)`` float32 tensor per variable, in a
#: file of its own: a broken network weight cannot hide behind it, nor it behind one
CLIMATOLOGY = "normalization.safetensors"
_STATIC_KEY = "__static__"
_MEMBER = "member.{}."  # the prefix of member k's weights, for k >= 1
# Task settings stored once, in ``task`` (the stored config's task section holds the rest)
TASK_KEYS = ("kind", "history", "lead", "factor")
# Top-level sections of the stored config
CONFIG_SECTIONS = (
    "seed",
    "data",
    "task",
    "model",
    "optim",
    "trainer",
    "finetune",
    "ensemble",
    "explain",
)
S = TypeVar("S", bound=Section)
_META_BYTES = 256 * 2**20  # climatune.json: the grid and the normalisation statistics
_REQUIRED = (
    "schema_version",
    "architecture",
    "task",
    "inputs",
    "outputs",
    "grid",
    "normalization",
    "config",
)


@dataclass
class ArtifactMeta:
    """The JSON half of an artifact, as plain Python values."""

    data: dict[str, Any]

    @property
    def members(self) -> int:
        """How many networks the artifact holds (1: a single network)."""
        return int(self.data.get("members", 1))

    @property
    def inputs(self) -> list[str]:
        return [v["name"] for v in self.data["inputs"]]

    @property
    def outputs(self) -> list[str]:
        return [v["name"] for v in self.data["outputs"]]

    @property
    def task(self) -> dict[str, Any]:
        """Every task setting: ``task`` (:data:`TASK_KEYS`) plus the rest of the config's."""
        return {**self.data["config"].get("task", {}), **self.data["task"]}

    @property
    def data_config(self) -> DataConfig:
        """The data section the model was trained with."""
        return _section(DataConfig, self.data["config"].get("data", {}), "data")

    @property
    def task_config(self) -> TaskConfig:
        """The model's task as a section (from :attr:`task`)."""
        return _section(TaskConfig, self.task, "task")

    def units(self, which: str = "inputs") -> dict[str, str]:
        return {v["name"]: v.get("units", "") for v in self.data[which]}


def _section(cls: type[S], raw: Any, name: str) -> S:
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(map(str, (name, *error["loc"])))
        raise ClimatuneError(
            f"the artifact's config key '{where}': {error['msg']}; refusing to use it"
        ) from None


def variable_records(
    ds: xr.Dataset | None, names: list[str], units: dict[str, str]
) -> list[dict[str, str]]:
    """``{name, units, standard_name, long_name}`` for each variable, for the JSON."""
    out = []
    for name in names:
        attrs = ds[name].attrs if ds is not None and name in ds else {}
        out.append(
            {
                "name": name,
                "units": str(attrs.get("units", units.get(name, ""))),
                "standard_name": str(attrs.get("standard_name", "")),
                "long_name": str(attrs.get("long_name", "")),
            }
        )
    return out


def model_paths(path: str | Path) -> list[Path]:
    """What reading the model at ``path`` reads: ``path`` and, for a run's ``model/``, the run.

    A command's outputs must stay out of all of them.
    """
    path = Path(path)
    run = path.parent if path.name == "model" and (path / META).exists() else path
    return [path, run]


def resolve_model_dir(path: str | Path) -> Path:
    """Accept a run directory or its ``model/`` directory; return the latter."""
    path = Path(path)
    if not path.exists():
        raise ClimatuneError(
            f"model {path} does not exist; give a run directory or its model/ directory"
        )
    if (path / "model" / META).exists():
        return path / "model"
    if (path / META).exists():
        return path
    raise ClimatuneError(f"{path} is not a ClimaTune model: no {META} in it or in {path / 'model'}")


def save_artifact(
    model_dir: str | Path,
    net: torch.nn.Module | Sequence[torch.nn.Module],
    meta: dict[str, Any],
    static: torch.Tensor,
    climatology: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write weights and metadata atomically; returns the model directory.

    ``net`` is one network or the members of an ensemble (one architecture). One
    safetensors file holds them all: member 0 under the names a single network has, so
    that its layout is unchanged, and member k under ``member.k.``. ``climatology``
    (anomaly normalisation's per-variable ``(12, ...)`` arrays) goes to
    :data:`CLIMATOLOGY`, apart from the network's weights and out of the JSON.
    """
    nets = list(net) if isinstance(net, Sequence) else [net]
    assert nets and all(isinstance(n, ClimateNet) for n in nets)
    spec = nets[0].spec()  # type: ignore[operator]
    if any(n.spec() != spec for n in nets[1:]):  # type: ignore[operator]
        raise ClimatuneError(
            f"refusing to write the model to {model_dir}: its members differ in architecture"
        )
    meta = {
        "schema_version": SCHEMA_VERSION,
        "climatune_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "architecture": spec,
        "members": len(nets),
        **meta,
    }
    tensors = {
        (_MEMBER.format(k) if k else "") + name: value.detach().cpu().contiguous()
        for k, member in enumerate(nets)
        for name, value in member.state_dict().items()
    }
    tensors[_STATIC_KEY] = static.detach().cpu().float().contiguous()
    fields = {
        name: torch.from_numpy(np.ascontiguousarray(clim, np.float32))
        for name, clim in (climatology or {}).items()
    }
    problem = _bad_tensor(tensors) or _bad_tensor(fields)
    if problem:
        raise ClimatuneError(f"refusing to write the model to {model_dir}: {problem}")
    stamp = {"format": "pt", "climatune": __version__}
    with atomic_path(model_dir) as tmp:
        tmp.mkdir(parents=True)
        save_file(tensors, str(tmp / WEIGHTS), metadata=stamp)
        if fields:
            save_file(fields, str(tmp / CLIMATOLOGY), metadata=stamp)
        (tmp / META).write_text(json.dumps(meta, indent=2, default=_json_default))
    return Path(model_dir)


def _bad_tensor(
    tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor] | None = None
) -> str | None:
    """What makes these weights unusable, or None.

    A floating tensor must be finite; with ``expected`` (the architecture's own state),
    a tensor must also be floating point exactly where the architecture's is.
    """
    for name, value in tensors.items():
        want = expected.get(name) if expected is not None else None
        if want is not None and want.is_floating_point() != value.is_floating_point():
            return f"tensor '{name}' is {value.dtype}, but the architecture needs {want.dtype}"
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return f"tensor '{name}' holds NaN or infinite values"
    return None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, tuple):
        return list(obj)
    return str(obj)


def _migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring older schema versions up to :data:`SCHEMA_VERSION`."""
    version = data.get("schema_version", 0)
    if version == 0:  # pre-release artifacts had no version and no provenance
        data = {**data, "schema_version": 1, "provenance": data.get("provenance", {})}
    if data["schema_version"] == 1:
        data = _one_copy(data)
    if data["schema_version"] == 2:  # one network; schema 3 added ensembles
        data = {**data, "schema_version": 3, "members": 1}
    return data


def _one_copy(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 to 2: ``task`` becomes the only copy of :data:`TASK_KEYS` (the config's task
    section keeps the other settings, ``patch`` under its new name ``mask_patch``) and
    ``residual_index`` moves into the net spec."""
    data = dict(data)
    config, arch = data.get("config"), data.get("architecture")
    if isinstance(config, dict) and isinstance(config.get("task"), dict):
        renamed = {"patch": "mask_patch"}
        task = {renamed.get(k, k): v for k, v in config["task"].items() if k not in TASK_KEYS}
        data["config"] = {**config, "task": task}
    residual = data.pop("residual_index", None)
    if isinstance(arch, dict) and arch.get("spec_version", 1) == 1:
        data["architecture"] = {**arch, "spec_version": 2, "residual_index": residual}
    data["schema_version"] = 2
    return data


def read_meta(model_dir: Path) -> ArtifactMeta:
    """Read and validate ``climatune.json`` (unknown top-level fields are refused)."""
    path = model_dir / META
    try:
        data = load_json(read_text(path, "artifact metadata", _META_BYTES), str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise ClimatuneError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ClimatuneError(f"{model_dir / META} must hold a JSON object")
    version = data.get("schema_version", 0)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ClimatuneError(
            f"{model_dir} has artifact schema {version!r}; this climatune ({__version__}) reads up to "
            f"{SCHEMA_VERSION}: upgrade climatune"
        )
    data = _migrate(data)
    allowed = set(_REQUIRED) | {
        "climatune_version",
        "created",
        "provenance",
        "parent",
        "origin",
        "static",
        "static_scale",
        "position_wavelengths",
        "region",
        "history",
        "members",
    }
    extra = sorted(set(data) - allowed)
    if extra:
        raise ClimatuneError(
            f"{model_dir / META} has unexpected fields {extra}; refusing to load it"
        )
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ClimatuneError(
            f"{model_dir / META} lacks fields {missing}; it is not a complete ClimaTune artifact"
        )
    problem = _malformed(data)
    if problem:
        raise ClimatuneError(f"{model_dir / META}: {problem}; refusing to load it")
    return ArtifactMeta(data)


def _malformed(data: dict[str, Any]) -> str | None:
    """What is wrong with the shape of the JSON's fields, or None (the values come later)."""
    for key in ("architecture", "task", "grid", "normalization", "config"):
        if not isinstance(data[key], dict):
            return f"field '{key}' must be an object"
    for key in ("inputs", "outputs"):
        records = data[key]
        if (
            not isinstance(records, list)
            or not records
            or not all(
                isinstance(r, dict)
                and isinstance(r.get("name"), str)
                and all(isinstance(v, str) for v in r.values())
                for r in records
            )
        ):
            return (
                f"field '{key}' must be a non-empty list of {{name, units, ...}} objects of strings"
            )
    variables = data["architecture"].get("variables")
    if not (isinstance(variables, list) and all(isinstance(v, str) for v in variables)):
        return "field 'architecture.variables' must be a list of variable names"
    task = data["task"]
    if task.get("kind") not in ("forecast", "downscale", "index", "reconstruct") or not all(
        type(task.get(k)) is int for k in ("history", "lead", "factor")
    ):
        return "field 'task' must hold a known kind and integer history, lead and factor"
    grid = data["grid"]
    if not all(
        isinstance(grid.get(k), list) and all(type(v) in (int, float) for v in grid[k])
        for k in ("lat", "lon")
    ):
        return "field 'grid' must hold lat and lon as lists of numbers"
    residual = data["architecture"].get("residual_index")
    n_in = len(data["inputs"])
    if residual is not None and not (
        isinstance(residual, list)
        and len(residual) == len(data["outputs"])
        and all(type(i) is int and -1 <= i < n_in for i in residual)
    ):
        return "field 'residual_index' must list, per output, an input index or -1"
    unknown = sorted(set(data["config"]) - set(CONFIG_SECTIONS))
    if unknown:
        return f"unknown config key '{unknown[0]}'{closest(unknown[0], CONFIG_SECTIONS)}"
    stored = data["config"].get("task", {})
    if not isinstance(stored, dict) or set(stored) & set(TASK_KEYS):
        return f"config key 'task' must be an object without {list(TASK_KEYS)} (see 'task')"
    members = data.get("members", 1)
    if type(members) is not int or not 1 <= members <= MAX_MEMBERS:
        return f"field 'members' must be a whole number from 1 to {MAX_MEMBERS}"
    static = data.get("static")
    if static is not None and not (
        isinstance(static, list) and all(isinstance(n, str) for n in static)
    ):
        return "field 'static' must be a list of names"
    scale = data.get("static_scale", {})
    if not isinstance(scale, dict) or not all(
        isinstance(v, list)
        and len(v) == 2
        and all(type(x) in (int, float) and math.isfinite(x) for x in v)
        and v[1] > 0
        for v in scale.values()
    ):
        return "field 'static_scale' must map each static field to [mean, std > 0]"
    return _position_malformed(data.get("position_wavelengths", []), static)


def _position_malformed(wavelengths: Any, static: list[str] | None) -> str | None:
    """What is wrong with ``position_wavelengths``: as ``data.position_wavelengths``
    (distinct degrees in (0, 720]), and named in that order by the static channels, which
    the static inputs' tensor matches (an edited list read crops in another order, or
    computed a channel per listed wavelength whatever the tensor)."""
    if (
        not isinstance(wavelengths, list)
        or not all(type(w) in (int, float) and 0 < w <= 720 for w in wavelengths)
        or len(set(wavelengths)) != len(wavelengths)
    ):
        return "field 'position_wavelengths' must list distinct degrees in (0, 720]"
    named = [n for n in static or [] if n.startswith("sin_lat_")]
    if (wavelengths or named) and named != [f"sin_lat_{w:g}" for w in wavelengths]:
        return "field 'position_wavelengths' must be those of the static channels, in order"
    return None


def read_weights(model_dir: Path, name: str = WEIGHTS) -> dict[str, torch.Tensor]:
    """Load the tensors of file ``name`` with safetensors (no pickle); a non-safetensors
    file is refused."""
    path = model_dir / name
    if not path.exists():
        raise ClimatuneError(f"{path} is missing; the artifact is incomplete")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ClimatuneError(
            f"{path} is not a valid safetensors file ({exc}); refusing to load it"
        ) from exc


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is the first CUDA GPU when there is one, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ClimatuneError(f"unknown device {device!r}; use auto, cpu or cuda[:N]") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ClimatuneError(f"device {device!r} asked for, but torch sees no CUDA GPU")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise ClimatuneError(
            f"device {device!r} asked for, but torch sees {torch.cuda.device_count()} GPU(s)"
        )
    return resolved


def read_artifact(
    model_dir: Path,
) -> tuple[ArtifactMeta, ClimateNet | EnsembleNet, torch.Tensor, dict[str, np.ndarray]]:
    """The validated metadata, the network with its weights, the static inputs and the
    climatology arrays (empty for a model normalised globally).

    The network of an ensemble is an :class:`~climatune.models.ensemble.EnsembleNet`
    (its ``forward`` is the members' mean). Anything that does not match (weights
    against the architecture and the member count, static inputs against the grid, then
    the climatology against the grid and the JSON) is refused with a
    :class:`~climatune.errors.ClimatuneError`.
    """
    meta = read_meta(model_dir)
    tensors = read_weights(model_dir)
    static = tensors.pop(_STATIC_KEY, None)
    if static is None:
        raise ClimatuneError(f"{model_dir / WEIGHTS} lacks the static inputs; re-export the model")
    nets = []
    for k in range(meta.members):
        prefix = _MEMBER.format(k) if k else ""
        mine = {
            name[len(prefix) :]: value
            for name, value in tensors.items()
            if name.startswith(prefix) and (k or not name.startswith("member."))
        }
        nets.append(_member_net(model_dir, meta, mine, static))
    known = meta.members * len(nets[0].state_dict())
    if len(tensors) != known:
        raise ClimatuneError(
            f"{model_dir / WEIGHTS} holds {len(tensors)} tensors, but {meta.members} member(s) "
            f"of its architecture have {known}; refusing to load it"
        )
    grid, names = meta.data["grid"], meta.data.get("static")
    shape = (len(names) if names else static.shape[0], len(grid["lat"]), len(grid["lon"]))
    if tuple(static.shape) != shape:
        raise ClimatuneError(
            f"{model_dir / WEIGHTS}: the static inputs are {list(static.shape)}, but the "
            f"artifact's static names and grid say {list(shape)}; refusing to load it"
        )
    net = nets[0] if len(nets) == 1 else EnsembleNet(nets)
    return meta, net, static, read_climatology(model_dir, meta)


def _member_net(
    model_dir: Path, meta: ArtifactMeta, tensors: dict[str, torch.Tensor], static: torch.Tensor
) -> ClimateNet:
    """One member's network with its weights, checked against the architecture."""
    try:
        net = ClimateNet.from_spec(meta.data["architecture"])
        expected = {**net.state_dict(), _STATIC_KEY: torch.zeros(())}
        problem = _bad_tensor({**tensors, _STATIC_KEY: static}, expected)
        if not problem:
            net.load_state_dict(tensors, strict=True)
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise ClimatuneError(
            f"weights in {model_dir} do not match its architecture: {str(exc).splitlines()[0]}"
        ) from exc
    if problem:
        raise ClimatuneError(f"{model_dir / WEIGHTS}: {problem}; refusing to load it")
    return net


def read_climatology(model_dir: Path, meta: ArtifactMeta) -> dict[str, np.ndarray]:
    """The climatology arrays of :data:`CLIMATOLOGY`, one per variable the JSON's
    ``normalization.climatology`` names (none when it names none).

    Each must be a finite float32 tensor of 12 calendar months on the artifact's grid
    (``(12, lat, lon)``), or ``(12,)`` for a scalar index; anything else is refused in one
    line that names the file and the tensor.
    """
    stats = meta.data["normalization"]
    if not all(isinstance(stats.get(k), dict) for k in ("mean", "std")):
        raise ClimatuneError(
            f"normalisation statistics in the artifact are malformed: {model_dir / META} "
            "needs 'mean' and 'std' maps of the variables"
        )
    named = stats.get("climatology")
    path = model_dir / CLIMATOLOGY
    if not named:
        if path.exists():
            raise ClimatuneError(
                f"{path} holds a climatology, but {META} names none; refusing to load it"
            )
        return {}
    if not isinstance(named, dict):
        raise ClimatuneError(
            f"{model_dir / META}: 'normalization.climatology' must map variables to months"
        )
    if not path.exists():
        raise ClimatuneError(
            f"{path} is missing, but {META} names climatologies of {sorted(named)}; "
            "the artifact is incomplete"
        )
    tensors = read_weights(model_dir, CLIMATOLOGY)
    if sorted(tensors) != sorted(named):
        raise ClimatuneError(
            f"{path} holds climatologies of {sorted(tensors)}, but {META} names "
            f"{sorted(named)}; refusing to load it"
        )
    grid = (len(meta.data["grid"]["lat"]), len(meta.data["grid"]["lon"]))
    for name, value in tensors.items():
        problem = None
        if value.dtype != torch.float32:
            problem = f"is {value.dtype}, not torch.float32"
        elif tuple(value.shape) not in ((12,), (12, *grid)):
            problem = f"is {list(value.shape)}, not 12 calendar months on the {list(grid)} grid"
        elif not bool(torch.isfinite(value).all()):
            problem = "holds NaN or infinite values"
        if problem:
            raise ClimatuneError(f"{path}: tensor '{name}' {problem}; refusing to load it")
    return {name: value.numpy() for name, value in tensors.items()}
