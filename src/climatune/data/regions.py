"""Regions: lat/lon boxes that may cross the 0° meridian, and polygons, with a halo.

A regional task reads its region plus a halo around it (context for the network) and
scores the loss and the metrics inside the region only (DESIGN.md, Regions). A
:class:`PolygonRegion` (a named IPCC AR6 region, :mod:`climatune.data.ar6`) reads its
bounding box plus the halo and scores the cells whose centres lie inside its polygon.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import xarray as xr

from climatune.data.grid import contiguous_lon, is_global
from climatune.errors import ClimatuneError

__all__ = ["Region", "PolygonRegion", "parse_region"]


@dataclass(frozen=True)
class Region:
    """A box ``lat_min..lat_max`` × ``lon_min..lon_max`` in degrees.

    Longitudes are taken modulo 360, in any convention; ``lon_min > lon_max`` means the box
    crosses 0° (``Region(-10, 10, 350, 20)`` spans 350°E to 20°E), and a box 360° wide
    (``0, 360`` or ``-180, 180``) is the whole globe.
    """

    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float
    whole_globe: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        bounds = (self.lat_min, self.lat_max, self.lon_min, self.lon_max)
        if not all(np.isfinite(bounds)):
            raise ClimatuneError(f"region bounds {list(bounds)} must all be finite numbers")
        if self.lat_min > self.lat_max:
            raise ClimatuneError(
                f"region latitude {self.lat_min}:{self.lat_max} is reversed; give south:north"
            )
        if self.lat_min < -90 or self.lat_max > 90:
            raise ClimatuneError(
                f"region latitude {self.lat_min}:{self.lat_max} goes beyond a pole; latitudes "
                "lie within [-90, 90]"
            )
        width = float(self.lon_max) - float(self.lon_min)
        if width > 360:
            raise ClimatuneError(
                f"region longitude {self.lon_min}:{self.lon_max} spans more than 360°; give "
                "west:east, e.g. 0:360 for the whole globe"
            )
        object.__setattr__(self, "whole_globe", width == 360)
        object.__setattr__(self, "lon_min", float(self.lon_min) % 360.0)
        object.__setattr__(self, "lon_max", float(self.lon_max) % 360.0)

    @property
    def crosses_seam(self) -> bool:
        return self.lon_min > self.lon_max

    def _lon_inside(self, lon: np.ndarray, halo: float = 0.0) -> np.ndarray:
        if self.whole_globe:
            return np.ones(np.shape(lon), dtype=bool)
        lon = np.mod(lon, 360.0)
        width = (self.lon_max - self.lon_min) % 360.0
        offset = np.mod(lon - (self.lon_min - halo), 360.0)
        return offset <= width + 2 * halo

    def mask(self, ds: xr.Dataset | xr.DataArray, halo: float = 0.0) -> xr.DataArray:
        """Boolean ``(lat, lon)`` mask of the cells inside the box (grown by ``halo`` degrees)."""
        lat_ok = (ds.lat >= self.lat_min - halo) & (ds.lat <= self.lat_max + halo)
        lon_ok = xr.DataArray(self._lon_inside(ds.lon.values, halo), coords={"lon": ds.lon})
        return (lat_ok & lon_ok).rename("region_mask")

    def subset(self, ds: xr.Dataset, halo: float = 0.0) -> xr.Dataset:
        """Cut the box plus ``halo`` degrees out of ``ds``.

        The cells come back contiguous, west to east. Cells that already run so in ``ds``
        keep their longitudes; a box across 0° cut from a global grid has its western
        longitudes written as negative degrees, so that the coordinate increases.
        """
        self.check_within(ds)
        lat_ok = ((ds.lat >= self.lat_min - halo) & (ds.lat <= self.lat_max + halo)).values
        lon_ok = self._lon_inside(ds.lon.values, halo)
        if lon_ok.all():
            return ds.isel(lat=np.flatnonzero(lat_ok))
        cells = np.flatnonzero(lon_ok)
        if not is_global(ds.lon.values) and np.any(np.diff(cells) != 1):
            raise ClimatuneError(
                f"region {self} (halo {halo:g}°) covers two separate parts of this regional grid "
                f"(lon {float(ds.lon.min()):g}..{float(ds.lon.max()):g}), which are not "
                "neighbours; give a box that lies in one piece of the grid"
            )
        index, lon = contiguous_lon(ds.lon.values[cells], start=self.lon_min - halo)
        out = ds.isel(lat=np.flatnonzero(lat_ok), lon=cells[index])
        if np.all(np.diff(index) > 0):
            return out
        return out.assign_coords(lon=("lon", lon, ds.lon.attrs))

    def check_within(self, ds: xr.Dataset | xr.DataArray) -> None:
        """Raise a ClimatuneError if no grid cell of ``ds`` falls inside the box."""
        if not bool(self.mask(ds).any()):
            raise ClimatuneError(
                f"region lat={self.lat_min:g}:{self.lat_max:g}, lon={self.lon_min:g}:{self.lon_max:g} "
                f"is outside the grid (lat {float(ds.lat.min()):g}..{float(ds.lat.max()):g}, "
                f"lon {float(ds.lon.min()):g}..{float(ds.lon.max()):g}); choose a box inside it"
            )

    def __str__(self) -> str:
        east = self.lon_min + 360 if self.whole_globe else self.lon_max
        return f"lat={self.lat_min:g}:{self.lat_max:g},lon={self.lon_min:g}:{east:g}"


def parse_region(text: str) -> Region:
    """Parse ``"lat=30:50,lon=235:260"``.

    Examples
    --------
    >>> parse_region("lat=-5:5,lon=190:240")
    Region(lat_min=-5.0, lat_max=5.0, lon_min=190.0, lon_max=240.0)
    """
    try:
        parts = dict(item.split("=", 1) for item in text.replace(" ", "").split(","))
        lat = [float(v) for v in parts.pop("lat").split(":")]
        lon = [float(v) for v in parts.pop("lon").split(":")]
        if parts or len(lat) != 2 or len(lon) != 2:
            raise ValueError
    except (KeyError, ValueError):
        raise ClimatuneError(f"region {text!r} must look like lat=30:50,lon=235:260") from None
    return Region(lat[0], lat[1], lon[0], lon[1])


Vertices = tuple[tuple[float, float], ...]


def _covering_arc(spans: list[tuple[float, float]]) -> tuple[float, float]:
    """The shortest west..east arc (degrees, east may exceed 360) covering every span."""
    best = (0.0, 360.0)
    for start, _ in spans:
        start %= 360.0
        east = max((s - start) % 360.0 + (e - s) for s, e in spans)
        if east < best[1] - best[0]:
            best = (start, start + east)
    return best


@dataclass(frozen=True)
class PolygonRegion:
    """A region given by polygons, such as an IPCC AR6 reference region.

    Parameters
    ----------
    abbrev, name, surface
        Its acronym (``"WNA"``), name and surface (``"land"``, ``"ocean"`` or
        ``"land-ocean"``).
    parts
        Its polygons, each a tuple of ``(lon, lat)`` vertices with longitudes in
        -180..180; a region across the dateline is two parts, one on each side.

    The cells scored are those whose centres lie inside a polygon (``regionmask``); the
    domain read is the bounding :attr:`box` plus the halo.
    """

    abbrev: str
    name: str
    surface: str
    parts: tuple[Vertices, ...] = field(repr=False)

    @cached_property
    def box(self) -> Region:
        """The bounding box, the shortest longitude arc that holds every part."""
        lats = [lat for part in self.parts for _, lat in part]
        spans = [(min(p)[0], max(p)[0]) for p in (sorted(part) for part in self.parts)]
        west, east = _covering_arc(spans)
        return Region(min(lats), max(lats), west, min(east, west + 360.0))

    @cached_property
    def _regions(self) -> Any:
        import regionmask  # lazily: it loads geopandas
        from shapely.geometry import MultiPolygon, Polygon

        shape = MultiPolygon([Polygon(part) for part in self.parts])
        return regionmask.Regions([shape], abbrevs=[self.abbrev], names=[self.name])

    def mask(self, ds: xr.Dataset | xr.DataArray, halo: float = 0.0) -> xr.DataArray:
        """Boolean ``(lat, lon)`` mask of the cells whose centres lie in the polygons
        (with ``halo`` > 0, the box grown by ``halo`` degrees, as :meth:`Region.mask`)."""
        if halo:
            return self.box.mask(ds, halo)
        lon = np.mod(np.asarray(ds.lon.values, dtype=float) + 180.0, 360.0) - 180.0
        lon[lon == -180.0] += 1e-9  # a centre on the dateline goes to the eastern part
        with warnings.catch_warnings():  # "no gridpoint belongs to any region": all False
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", PendingDeprecationWarning)  # inside regionmask
            inside = self._regions.mask(lon, ds.lat.values, wrap_lon=False).notnull().values
        return xr.DataArray(
            inside, coords={"lat": ds.lat, "lon": ds.lon}, dims=("lat", "lon"), name="region_mask"
        )

    def subset(self, ds: xr.Dataset, halo: float = 0.0) -> xr.Dataset:
        """Cut the bounding box plus ``halo`` degrees out of ``ds`` (:meth:`Region.subset`)."""
        self.check_within(ds)
        return self.box.subset(ds, halo)

    def check_within(self, ds: xr.Dataset | xr.DataArray) -> None:
        """Raise a ClimatuneError if no cell centre of ``ds`` lies inside the polygons."""
        if not bool(self.mask(ds).any()):
            raise ClimatuneError(
                f"region {self} ({self.box}) holds no cell centre of the grid (lat "
                f"{float(ds.lat.min()):g}..{float(ds.lat.max()):g}, lon {float(ds.lon.min()):g}.."
                f"{float(ds.lon.max()):g}); choose a region inside it, or a finer grid"
            )

    def __str__(self) -> str:
        return f"{self.abbrev} ({self.name})"
