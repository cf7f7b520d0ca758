"""Bundled real datasets: the Met Office sample files shipped by ``iris-sample-data``.

(Not to be confused with :mod:`climatune.data.samples`, the torch samples of a task.)

They are real model output and observations that install offline from PyPI, so the examples,
the demo and the tests can run on genuine climate data. Refer to them as ``sample://NAME``
wherever a data path is accepted.

Examples
--------
>>> from climatune.data.bundled import bundled_path
>>> bundled_path("A1B_north_america").name
'A1B_north_america.nc'
"""

from __future__ import annotations

from pathlib import Path

from climatune.errors import ClimatuneError, closest

__all__ = ["BUNDLED_PREFIX", "list_bundled", "bundled_path", "bundled_name"]

BUNDLED_PREFIX = "sample://"

# name -> (file inside iris_sample_data.path, kind, description)
_BUNDLED: dict[str, tuple[str, str, str]] = {
    "A1B_north_america": (
        "A1B_north_america.nc",
        "grid",
        "annual-mean 1.5 m air temperature (K) 1860-2099, SRES A1B scenario, "
        "37x49 grid over North America, 360_day calendar (Met Office UM)",
    ),
    "E1_north_america": (
        "E1_north_america.nc",
        "grid",
        "annual-mean 1.5 m air temperature (K) 1860-2099, SRES E1 scenario, "
        "37x49 grid over North America, 360_day calendar (Met Office UM)",
    ),
    "ostia_monthly": (
        "ostia_monthly.nc",
        "grid",
        "OSTIA monthly-mean surface temperature (K) 2006-04 to 2010-09, 18x432 tropical "
        "band 5S-5N around the globe, land cells are NaN, standard calendar",
    ),
    "SOI_Darwin": (
        "SOI_Darwin.nc",
        "index",
        "Southern Oscillation Index from Darwin pressure, monthly 1866-2013: "
        "a 1-D index series (no grid) for index tasks",
    ),
}


def _root() -> Path:
    try:
        import iris_sample_data
    except ImportError as exc:
        raise ClimatuneError(
            "the bundled samples need the iris-sample-data package; "
            "install it with: pip install iris-sample-data"
        ) from exc
    return Path(iris_sample_data.path)


def bundled_name(source: str) -> str | None:
    """Return ``NAME`` for a ``sample://NAME`` string, or ``None`` for anything else."""
    if isinstance(source, str) and source.startswith(BUNDLED_PREFIX):
        return source[len(BUNDLED_PREFIX) :]
    return None


def list_bundled() -> list[dict[str, str]]:
    """List the bundled datasets: ``name``, ``description``, ``path`` and ``kind``.

    ``kind`` is ``"grid"`` for gridded fields and ``"index"`` for 1-D index series.
    """
    root = _root()
    return [
        {"name": name, "description": desc, "path": str(root / fname), "kind": kind}
        for name, (fname, kind, desc) in _BUNDLED.items()
    ]


def bundled_path(name: str) -> Path:
    """Return the local path of the bundled dataset ``name`` (``sample://`` prefix optional)."""
    name = bundled_name(name) or name
    if name not in _BUNDLED:
        raise ClimatuneError(
            f"unknown sample '{name}'{closest(name, _BUNDLED)}; "
            f"available samples: {', '.join(_BUNDLED)}"
        )
    path = _root() / _BUNDLED[name][0]
    if not path.is_file():
        raise ClimatuneError(
            f"sample file {path} is missing from the iris-sample-data install; "
            "reinstall it with: pip install --force-reinstall iris-sample-data"
        )
    return path
