"""Settings the data layer reads: the data source, region, split and task (config sections)."""

from __future__ import annotations

import warnings
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from climatune.data.ar6 import named_region
from climatune.data.regions import PolygonRegion, Region  # the owner of what a region may be
from climatune.errors import ClimatuneError, closest
from climatune.utils.settings import Section

__all__ = [
    "DataConfig",
    "GridSpec",
    "IndexTargetConfig",
    "RandomCropConfig",
    "RegionConfig",
    "SourceConfig",
    "SplitConfig",
    "StaticConfig",
    "TaskConfig",
]


class RegionConfig(Section):
    """A lat/lon box in degrees (``lon`` may cross 0°, e.g. ``[350, 20]``), or a named
    IPCC AR6 region (``name: WNA`` or ``name: Western North America``), scored by its
    polygon and read with the halo around its bounding box.

    A plain string stands for a name (``region: MED``, ``--set data.region=MED``).
    """

    name: str | None = Field(None, description="an IPCC AR6 region: acronym or name")
    lat: tuple[float, float] | None = None
    lon: tuple[float, float] | None = None
    halo: float = Field(0.0, ge=0, le=90, description="degrees of context read around the region")

    @model_validator(mode="before")
    @classmethod
    def _a_name(cls, raw: Any) -> Any:
        return {"name": raw} if isinstance(raw, str) else raw

    @model_validator(mode="after")
    def _a_box_or_name(self) -> RegionConfig:
        if self.name is not None and (self.lat is not None or self.lon is not None):
            raise ValueError(
                f"give a region by name ({self.name!r}) or by lat and lon, not both; to "
                f"replace a box, set the whole region: --set 'data.region={{name: {self.name}}}'"
            )
        if self.name is None and (self.lat is None or self.lon is None):
            raise ValueError(
                "a region needs lat and lon (e.g. {lat: [30, 50], lon: [235, 260]}) or the "
                "name of an IPCC AR6 region (e.g. WNA; 'climatune data regions' lists them)"
            )
        try:
            self.shape()
        except ClimatuneError as exc:
            raise ValueError(str(exc)) from None
        return self

    def shape(self) -> Region | PolygonRegion:
        """The box, or the named region's polygons."""
        if self.name is not None:
            return named_region(self.name)
        assert self.lat is not None and self.lon is not None  # checked on validation
        return Region(*self.lat, *self.lon)


class SplitConfig(Section):
    """Contiguous blocks of years (inclusive); a sample belongs to a block only if every
    step it reads (inputs and target) lies in that block's years."""

    train: tuple[int, int] | list[tuple[int, int]]
    val: tuple[int, int]
    test: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> SplitConfig:
        if self.train == []:
            raise ValueError("train needs at least one block of years, e.g. [2000, 2004]")
        for name in ("train", "val", "test"):
            value = getattr(self, name)
            blocks = value if isinstance(value, list) else [value]
            for block in blocks:
                if block is not None and block[0] > block[1]:
                    raise ValueError(f"{name} block {list(block)} starts after it ends")
        return self


class StaticConfig(Section):
    """User-supplied static fields, such as orography, read from ``path``."""

    path: str
    variables: list[str]


Regrid = Literal["bilinear", "conservative"]


class SourceConfig(Section):
    """One archive of a multi-source config (``data.sources``): its path, the file names
    of the variables whose names differ from the canonical ones (the others are read under
    their own), its share of the batches and how it is regridded to the common grid (one
    method, or one per canonical variable)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    path: str | list[str]
    variables: dict[str, str] | None = Field(
        None,
        description="canonical name -> the variable's name in this source's files; "
        "variables not listed keep their own names",
    )
    weight: float = Field(1.0, gt=0, description="relative share of the training batches")
    regrid: Regrid | dict[str, Regrid] = "bilinear"

    def method(self, variable: str) -> str:
        """The regridding method of a canonical ``variable``."""
        if isinstance(self.regrid, str):
            return self.regrid
        return self.regrid.get(variable, "bilinear")


class GridSpec(Section):
    """An explicit regular target grid: cell centres ``[first, last, step]`` in degrees.

    Latitudes run south to north. Longitudes run east from ``first``: a grid across 0°
    is ``[-42, 42, 6]``, or ``[318, 42, 6]`` (read as ``[318, 402, 6]``).
    """

    lat: tuple[float, float, float]
    lon: tuple[float, float, float]

    @model_validator(mode="after")
    def _increasing(self) -> GridSpec:
        first, last, step = self.lon
        if step > 0 and last < first and first >= 0 and last >= 0:  # across 0°, east of first
            self.lon = (first, last + 360.0, step)
        for axis in ("lat", "lon"):
            first, last, step = getattr(self, axis)
            if step <= 0 or last < first:
                order = " from south to north" if axis == "lat" else ""
                raise ValueError(
                    f"grid.{axis} must be [first, last, step]{order} with step > 0, "
                    f"got {[first, last, step]}"
                )
        if self.lat[0] < -90 or self.lat[1] > 90:
            raise ValueError("grid.lat must lie within [-90, 90]")
        return self


class DataConfig(Section):
    """Where the data come from, what is read, and how it is batched and normalised.

    ``normalization``: ``anomaly`` subtracts a per-cell, per-calendar-month climatology of
    the training years and scales the anomalies; ``global`` z-scores each variable with
    one mean and std; ``auto`` (default) is ``anomaly`` for forecast and index tasks on
    sub-annual data, ``global`` otherwise.
    """

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
    normalization: Literal["auto", "anomaly", "global"] = "auto"
    # multi-source archives (climatune.data.sources); data.path alone is one source
    sources: list[SourceConfig] | None = None
    grid: str | GridSpec | None = None
    source_normalization: Literal["pooled", "per_source"] = "pooled"
    # wavelengths (degrees) of extra sin/cos encodings of lat and lon among the static inputs
    position_wavelengths: list[float] | None = None

    @field_validator("position_wavelengths")
    @classmethod
    def _wavelengths(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and any(not 0 < w <= 720 for w in value):
            raise ValueError("position_wavelengths are degrees in (0, 720]")
        if value is not None and len(set(value)) != len(value):
            raise ValueError("position_wavelengths must be distinct")
        return value

    @model_validator(mode="after")
    def _sources(self) -> DataConfig:
        if self.sources is None:
            if self.grid is not None or self.source_normalization != "pooled":
                raise ValueError("data.grid and data.source_normalization need data.sources")
            return self
        if not self.sources:
            raise ValueError("data.sources needs at least one source")
        if self.path != DataConfig.model_fields["path"].default:
            raise ValueError("give data.path or data.sources, not both")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"data.sources names must be unique, got {names}")
        if isinstance(self.grid, str) and self.grid not in names:
            raise ValueError(f"data.grid {self.grid!r} is not a source; the sources are {names}")
        return self


class IndexTargetConfig(Section):
    """The scalar target of an ``index`` task: a variable of the data or of another file."""

    variable: str
    path: str | None = None
    region: RegionConfig | None = None


class RandomCropConfig(Section):
    """Train on randomly placed windows of ``size`` (lat, lon) cells.

    Each training batch is cropped with probability ``prob``; each of its samples gets its
    own window, drawn from ``(seed, epoch, sample)``. Windows wrap across the longitude
    seam of a global grid, never across a pole. Validation and test see the whole domain.
    With ``min_size``, each cropped batch draws its windows' size between ``min_size``
    and ``size`` (from ``(seed, epoch, batch)``), so that the network meets grids of every
    size modulo its padding multiple, as regional crops have.
    """

    size: tuple[int, int] = Field(description="the window's (lat, lon) size in grid cells")
    prob: float = Field(1.0, gt=0, le=1, description="the share of training batches cropped")
    min_size: tuple[int, int] | None = Field(
        None, description="the smallest (lat, lon) window; unset: every window has size"
    )

    @model_validator(mode="after")
    def _positive(self) -> RandomCropConfig:
        if min(self.size) < 1:
            raise ValueError(f"a crop needs at least one cell each way, not {list(self.size)}")
        low = self.min_size
        if low is not None and not (1 <= low[0] <= self.size[0] and 1 <= low[1] <= self.size[1]):
            raise ValueError(
                f"min_size {list(low)} must lie between [1, 1] and size {list(self.size)}"
            )
        return self


#: The objectives a pretraining run can weigh together (``task.objectives``).
OBJECTIVES = ("forecast", "reconstruct")


class TaskConfig(Section):
    """What the network learns; ``mask_ratio`` and ``mask_patch`` (the side, in cells, of
    the hidden squares) apply to ``reconstruct``, and to the reconstruction objective.

    ``objectives`` weighs several objectives into one loss on a shared backbone: with
    ``kind: forecast``, ``{forecast: 1.0, reconstruct: 0.5}`` adds masked reconstruction
    of the input fields at step t, through a head of its own that is not exported. Unset,
    the task's own objective alone. ``random_crop`` trains on random windows
    (:class:`RandomCropConfig`). Both are pretraining settings.

    ``patch``, this key's name before ``mask_patch`` (it is not the ViT's ``model.patch``),
    is read as ``mask_patch`` with a warning, so older configs and artifacts still load.
    """

    kind: Literal["forecast", "downscale", "index", "reconstruct"] = "forecast"
    history: int = Field(1, gt=0)
    lead: int = Field(1, ge=0)
    factor: int = Field(4, gt=1)
    mask_ratio: float = Field(0.5, gt=0, lt=1)
    mask_patch: int = Field(4, gt=0)
    index: IndexTargetConfig | None = None
    objectives: dict[str, float] | None = Field(
        None, description="objective -> loss weight, e.g. {forecast: 1.0, reconstruct: 0.5}"
    )
    random_crop: RandomCropConfig | None = None

    @model_validator(mode="after")
    def _weighed_objectives(self) -> TaskConfig:
        if self.objectives is None:
            return self
        if self.kind != "forecast" and set(self.objectives) != {self.kind}:
            raise ValueError(
                f"objectives combine with task.kind forecast only, not {self.kind}; "
                "set task.kind: forecast or drop task.objectives"
            )
        unknown = sorted(set(self.objectives) - {*OBJECTIVES, self.kind})
        if unknown:
            raise ValueError(
                f"unknown objective(s) {unknown}{closest(unknown[0], OBJECTIVES)}; "
                f"the objectives are: {', '.join(OBJECTIVES)}"
            )
        if self.kind not in self.objectives:
            raise ValueError(
                f"the objectives must weigh the task's own, {self.kind!r}, e.g. "
                f"{{{self.kind}: 1.0, reconstruct: 0.5}}"
            )
        bad = {k: w for k, w in self.objectives.items() if not w > 0}
        if bad:
            raise ValueError(f"objective weights must be positive numbers, not {bad}")
        return self

    @model_validator(mode="before")
    @classmethod
    def _renamed_patch(cls, raw: Any) -> Any:
        if not isinstance(raw, dict) or "patch" not in raw:
            return raw
        if "mask_patch" in raw:
            raise ValueError("'patch' is the old name of 'mask_patch': give only task.mask_patch")
        warnings.warn(
            "config key task.patch is now task.mask_patch (the masked squares of reconstruct); "
            "read as task.mask_patch",
            FutureWarning,
            stacklevel=2,
        )
        out = {k: v for k, v in raw.items() if k != "patch"}
        return {**out, "mask_patch": raw["patch"]}
