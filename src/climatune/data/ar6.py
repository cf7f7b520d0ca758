"""The IPCC AR6 (WGI) reference regions, by name or acronym, from package data.

The polygons are the IPCC WGI reference regions v4 coordinate table (Iturbide et al. 2020,
CC-BY 4.0), shipped in ``climatune/data/regions_ar6/`` (see the README there), because
``regionmask.defined_regions.ar6`` downloads its polygons at run time. The table splits
the regions that cross the dateline into two rows (``RAR`` and ``RAR*``); they are joined
into one region of that acronym here.

Examples
--------
>>> region = named_region("Western North America")
>>> region.abbrev, region.name, region.surface
('WNA', 'W.North-America', 'land')
>>> str(named_region("med").box)
'lat=30:45,lon=350:40'
"""

from __future__ import annotations

import csv
import re
from functools import cache
from importlib import resources

from climatune.data.regions import PolygonRegion
from climatune.errors import ClimatuneError, closest

__all__ = ["AR6_TABLE", "ar6_regions", "list_named_regions", "named_region"]

#: The coordinate table inside the package.
AR6_TABLE = "regions_ar6/IPCC-WGI-reference-regions-v4_coordinates.csv"

# Words of a region's name that users spell in full or abbreviate ("W." in the table).
_WORDS = {
    "west": "w",
    "western": "w",
    "east": "e",
    "eastern": "e",
    "north": "n",
    "northern": "n",
    "south": "s",
    "southern": "s",
    "central": "c",
    "centre": "c",
    "center": "c",
    "northwest": "n w",
    "northwestern": "n w",
    "northeast": "n e",
    "northeastern": "n e",
    "southwest": "s w",
    "southwestern": "s w",
    "southeast": "s e",
    "southeastern": "s e",
    "indian": "indic",
    "and": "",
    "the": "",
    "ocean": "",
}


def _key(text: str) -> str:
    """A spelling-independent key: ``"W.North-America"`` and ``"western north america"``
    both give ``"w n america"``."""
    words = (_WORDS.get(w, w) for w in re.split(r"[^a-z0-9]+", text.lower()))
    return " ".join(" ".join(words).split())


def _vertex(cell: str) -> tuple[float, float]:
    lon, lat = cell.split("|")
    return float(lon), float(lat)


@cache
def ar6_regions() -> dict[str, PolygonRegion]:
    """Every AR6 reference region by acronym, in the order of the table (58 regions)."""
    text = resources.files("climatune.data").joinpath(AR6_TABLE).read_text(encoding="utf-8")
    rows = list(csv.reader(text.splitlines()))[1:]
    parts: dict[str, list[tuple[tuple[float, float], ...]]] = {}
    about: dict[str, tuple[str, str]] = {}
    for row in rows:
        if not row or not row[0].strip():
            continue
        _, surface, name, acronym, *cells = row
        abbrev = acronym.strip().rstrip("*")
        parts.setdefault(abbrev, []).append(tuple(_vertex(c) for c in cells if c.strip()))
        about.setdefault(abbrev, (name.strip(), surface.strip().lower()))
    return {
        abbrev: PolygonRegion(abbrev, about[abbrev][0], about[abbrev][1], tuple(polys))
        for abbrev, polys in parts.items()
    }


def list_named_regions() -> list[dict[str, str]]:
    """``{"abbrev", "name", "surface"}`` of every named region, for ``data regions``."""
    return [
        {"abbrev": r.abbrev, "name": r.name, "surface": r.surface} for r in ar6_regions().values()
    ]


def named_region(text: str) -> PolygonRegion:
    """The AR6 region called ``text``: its acronym (any case) or its name, spelled as in
    the table (``"W.North-America"``) or in words (``"Western North America"``)."""
    regions = ar6_regions()
    by_abbrev = {a.lower(): r for a, r in regions.items()}
    by_name = {_key(r.name): r for r in regions.values()}
    found = by_abbrev.get(text.strip().lower()) or by_name.get(_key(text))
    if found is None:
        hint = closest(text, [*regions, *(r.name for r in regions.values())])
        raise ClimatuneError(
            f"unknown region {text!r}{hint}; give an IPCC AR6 region (acronym or name; "
            "'climatune data regions' lists them) or a box {lat: [S, N], lon: [W, E]}"
        )
    return found
