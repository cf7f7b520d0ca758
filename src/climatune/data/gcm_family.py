"""A family of synthetic GCMs and the observations they approximate.

Every member runs the coupled physics of :mod:`climatune.data.synthetic` on the same
world (one land mask, one forcing), but as its own model: its own grid and cftime
calendar, perturbed :class:`~climatune.data.synthetic.Coefficients` (climate
sensitivity, ENSO damping and period, ocean memory, teleconnection strength), a fixed
:class:`~climatune.data.synthetic.Bias` of tas (a global offset plus a smooth spatial
pattern), internal variability from its own random stream, and, for some, CMIP-like
variable names and units (``ts`` or ``tos`` in degC) that a loader must map back.

``obs`` is the truth the GCMs approximate: the unperturbed coefficients and no bias, on a
1 degree grid in the standard calendar, a shorter record (the last ``OBS_YEARS`` years of
the family's span, carrying the warming accumulated before it), and tas missing south of
75S and in a fixed 2 % of the cells.

=========  ==========  ===============  ==========================================
member     grid        calendar         differs by
=========  ==========  ===============  ==========================================
gcm-a      72x144      noleap           sensitivity 1.2, faster ENSO damping,
           (2.5 deg)                    tas +0.8 K
gcm-b      90x180      360_day          sensitivity 0.8, 3.5-year ENSO, sst written
           (2 deg)                      as ``tos`` in degC, tas -0.6 K
gcm-c      60x96       gregorian        sensitivity 1.4, polar amplification 3,
           (3x3.75)                     slow ENSO damping, tas written as ``ts`` in
                                        degC, tas +1.5 K
obs        180x360     standard         the truth; 40 years; NaN cells in tas
           (1 deg)
=========  ==========  ===============  ==========================================

``coarsen`` divides every member's grid by a whole factor per axis (2, 3 or 6 keep all
four grids whole), for experiments that fit a CPU. The whole family follows from the
seed: each member's variability is the stream :attr:`Member.stream` of that seed.

Examples
--------
>>> spec = member_spec("gcm-b", years=2, seed=0, coarsen=6)
>>> spec.grid, spec.calendar, dict(spec.names)
((15, 30), '360_day', {'sst': 'tos'})
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from climatune.data.synthetic import (
    COEFFICIENTS,
    ArchiveSpec,
    Bias,
    Coefficients,
    check_spec,
    fill_store,
    write_archive,
)
from climatune.errors import ClimatuneError
from climatune.utils.atomic import atomic_path, check_new_path

__all__ = [
    "MEMBERS",
    "OBS_YEARS",
    "Member",
    "member_spec",
    "parse_members",
    "write_member",
    "write_family",
]

OBS_YEARS = 40  # the observed record: the last 40 years of the family's span (or fewer)
FAMILY_FILE = "family.json"


@dataclass(frozen=True)
class Member:
    """One model of the family: how it differs from the truth.

    Attributes
    ----------
    name, grid, calendar, description
        Its identity; ``grid`` is ``(nlat, nlon)`` before coarsening.
    changes
        Coefficients that differ from :data:`~climatune.data.synthetic.COEFFICIENTS`.
    bias
        Its fixed tas bias.
    stream
        Its random stream (the internal variability) under the family's seed.
    names, celsius
        Variables it writes under other names, and the temperatures it writes in degC.
    observed
        True for the observations: a shorter record with missing cells.
    """

    name: str
    grid: tuple[int, int]
    calendar: str
    description: str
    stream: int
    changes: dict[str, Any] = field(default_factory=dict)
    bias: Bias = Bias()
    names: dict[str, str] = field(default_factory=dict)
    celsius: frozenset[str] = frozenset()
    observed: bool = False

    def coefficients(self) -> Coefficients:
        """The member's coefficients: the truth with its changes."""
        return dataclasses.replace(COEFFICIENTS, **self.changes)


_TREND = COEFFICIENTS.trend_equator_K_per_year

MEMBERS: dict[str, Member] = {
    m.name: m
    for m in (
        Member(
            "gcm-a",
            (72, 144),
            "noleap",
            "2.5 deg, noleap; sensitive (1.2x trend), ENSO damped faster, warm bias",
            stream=1,
            changes={
                "trend_equator_K_per_year": 1.2 * _TREND,
                "enso_damping_years": 1.5,
                "ocean_memory_days": 60.0,
            },
            bias=Bias(offset_K=0.8, pattern_K=1.0, pattern_seed=101),
        ),
        Member(
            "gcm-b",
            (90, 180),
            "360_day",
            "2 deg, 360_day; insensitive (0.8x trend), 3.5-year ENSO, sst as tos in degC",
            stream=2,
            changes={
                "trend_equator_K_per_year": 0.8 * _TREND,
                "enso_period_years": 3.5,
                "enso_tas_teleconnection_K": 1.2,
            },
            bias=Bias(offset_K=-0.6, pattern_K=0.8, pattern_seed=202),
            names={"sst": "tos"},
            celsius=frozenset({"sst"}),
        ),
        Member(
            "gcm-c",
            (60, 96),
            "gregorian",
            "3x3.75 deg, gregorian; very sensitive, strong polar amplification, "
            "slow ENSO damping, tas as ts in degC",
            stream=3,
            changes={
                "trend_equator_K_per_year": 1.4 * _TREND,
                "polar_amplification": 3.0,
                "enso_damping_years": 3.0,
                "ocean_memory_days": 120.0,
                "enso_tas_teleconnection_K": 1.8,
            },
            bias=Bias(offset_K=1.5, pattern_K=1.5, pattern_seed=303),
            names={"tas": "ts"},
            celsius=frozenset({"tas"}),
        ),
        Member(
            "obs",
            (180, 360),
            "standard",
            "1 deg, standard calendar; the truth, last 40 years, tas missing in places",
            stream=0,
            observed=True,
        ),
    )
}


def _member(name: str) -> Member:
    if name not in MEMBERS:
        raise ClimatuneError(
            f"there is no synthetic model {name!r}; choose from {', '.join(MEMBERS)}"
        )
    return MEMBERS[name]


def _coarse_grid(member: Member, coarsen: int) -> tuple[int, int]:
    if isinstance(coarsen, bool) or not isinstance(coarsen, int) or coarsen < 1:
        raise ClimatuneError(f"--coarsen {coarsen!r} must be a positive whole number")
    nlat, nlon = member.grid
    if nlat % coarsen or nlon % coarsen:
        raise ClimatuneError(
            f"--coarsen {coarsen} does not divide the {nlat}x{nlon} grid of {member.name!r}; "
            "give 1, 2, 3 or 6"
        )
    return nlat // coarsen, nlon // coarsen


def member_spec(
    name: str,
    years: int,
    seed: int = 0,
    *,
    coarsen: int = 1,
    freq: str = "monthly",
    start_year: int = 1950,
) -> ArchiveSpec:
    """The archive of member ``name`` of the family spanning ``years`` from ``start_year``.

    The observations cover the last ``min(years, OBS_YEARS)`` of those years.

    Raises
    ------
    ClimatuneError
        For an unknown member or a ``coarsen`` that does not divide its grid.
    """
    member = _member(name)
    grid = _coarse_grid(member, coarsen)
    own_years, own_start = years, start_year
    if member.observed and isinstance(years, int) and years > OBS_YEARS:
        own_years, own_start = OBS_YEARS, start_year + years - OBS_YEARS
    coeffs = member.coefficients()
    identity: dict[str, Any] = {
        "title": f"ClimaTune synthetic {'observations' if member.observed else 'GCM'} "
        f"'{member.name}'",
        "model": member.name,
        "model_description": member.description,
        "model_family": ",".join(MEMBERS),
        "family_seed": int(seed),
        "family_start_year": int(start_year),
        "family_years": int(years),
        "variability_stream": member.stream,
        "native_grid": f"{member.grid[0]}x{member.grid[1]}",
        "coarsen": int(coarsen),
        "nominal_resolution": f"{180 / grid[0]:g}x{360 / grid[1]:g} degree",
        "coefficient_changes": json.dumps(member.changes, sort_keys=True),
        "climate_sensitivity": coeffs.trend_equator_K_per_year / _TREND,
        "bias_applies_to": member.names.get("tas", "tas"),
        "variable_names": json.dumps(member.names, sort_keys=True),
        "celsius_variables": ",".join(member.names.get(v, v) for v in sorted(member.celsius)),
        **member.bias.to_dict(),
    }
    observed = dict(missing_fraction=0.02, missing_seed=7, missing_south_of=-75.0)
    if member.observed:
        identity.update(
            missing_tas_fraction_of_cells=observed["missing_fraction"],
            missing_tas_south_of=observed["missing_south_of"],
        )
    return ArchiveSpec(
        years=own_years,
        grid=grid,
        freq=freq,
        seed=seed,
        start_year=own_start,
        coefficients=coeffs,
        calendar=member.calendar,
        forcing_start_year=start_year,
        stream=member.stream,
        bias=member.bias,
        names=member.names,
        celsius=member.celsius,
        attrs=identity,
        **(observed if member.observed else {}),  # type: ignore[arg-type]
    )


def write_member(
    out: str | Path,
    name: str,
    years: int,
    seed: int = 0,
    *,
    coarsen: int = 1,
    freq: str = "monthly",
) -> Path:
    """Write member ``name`` (see :func:`member_spec`) to the new Zarr store ``out``."""
    return write_archive(out, member_spec(name, years, seed, coarsen=coarsen, freq=freq))


def parse_members(text: str) -> list[str]:
    """``"gcm-a,gcm-b,obs"`` -> the member names, checked (known, none twice)."""
    names = [n.strip() for n in str(text).split(",") if n.strip()]
    if not names:
        raise ClimatuneError(f"--family {text!r} names no member; e.g. {','.join(MEMBERS)}")
    for name in names:
        _member(name)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ClimatuneError(f"--family names {', '.join(twice)} more than once")
    return names


def write_family(
    out: str | Path,
    members: list[str],
    years: int,
    seed: int = 0,
    *,
    coarsen: int = 1,
    freq: str = "monthly",
) -> dict[str, Path]:
    """Write each member to ``out/NAME.zarr`` and a ``family.json`` index, atomically.

    ``out`` must not exist; on any failure nothing is left there.

    Returns
    -------
    dict
        ``{member: store path}``.
    """
    out = check_new_path(out)
    specs = {name: member_spec(name, years, seed, coarsen=coarsen, freq=freq) for name in members}
    for spec in specs.values():
        check_spec(spec)
    with atomic_path(out, overwrite=False) as tmp:
        tmp.mkdir()
        index: dict[str, Any] = {"seed": seed, "years": years, "coarsen": coarsen, "members": {}}
        for name, spec in specs.items():
            fill_store(tmp / f"{name}.zarr", spec)
            index["members"][name] = {
                "path": f"{name}.zarr",
                "grid": list(spec.grid),
                "calendar": spec.calendar,
                "years": [spec.start_year, spec.start_year + spec.years - 1],
                "variables": {v: spec.written_name(v) for v in ("tas", "sst", "siconc", "zg")},
                "bias_offset_K": spec.bias.offset_K if spec.bias else 0.0,
            }
        (tmp / FAMILY_FILE).write_text(json.dumps(index, indent=2) + "\n")
    return {name: out / f"{name}.zarr" for name in members}
