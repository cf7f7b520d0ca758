"""The interaction matrix: how much each input variable and climate component drives a target.

A row per target (an output variable, or a target spec) holds the share of the total
absolute attribution on each input variable and on each component (atmosphere, ocean,
ice, land, other). Components come from ``explain.components`` in the config, else from
the variable's CF ``standard_name``, else from its ``component`` attribute.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from climatune.utils.atomic import atomic_path

__all__ = ["COMPONENTS", "component_of", "Interactions", "interaction_matrix", "write_interactions"]

COMPONENTS = ("atmosphere", "ocean", "ice", "land", "other")

_STANDARD_NAMES = {
    "atmosphere": {
        "air_temperature",
        "air_potential_temperature",
        "geopotential_height",
        "geopotential",
        "air_pressure_at_mean_sea_level",
        "air_pressure_at_sea_level",
        "surface_air_pressure",
        "precipitation_flux",
        "precipitation_amount",
        "specific_humidity",
        "relative_humidity",
        "eastward_wind",
        "northward_wind",
        "upward_air_velocity",
        "wind_speed",
        "lagrangian_tendency_of_air_pressure",
        "cloud_area_fraction",
        "dew_point_temperature",
        "toa_outgoing_longwave_flux",
        "atmosphere_mass_content_of_water_vapor",
    },
    "ocean": {
        "sea_surface_temperature",
        "sea_surface_salinity",
        "sea_surface_height_above_geoid",
        "sea_surface_height_above_mean_sea_level",
        "ocean_mixed_layer_thickness",
        "ocean_heat_content",
        "integral_wrt_depth_of_sea_water_potential_temperature_expressed_as_heat_content",
    },
    "ice": {
        "sea_ice_area_fraction",
        "sea_ice_thickness",
        "sea_ice_extent",
        "sea_ice_volume",
        "surface_snow_thickness",
        "land_ice_thickness",
    },
    "land": {
        "soil_moisture_content",
        "moisture_content_of_soil_layer",
        "surface_altitude",
        "leaf_area_index",
        "surface_snow_amount",
        "soil_temperature",
    },
}
_PREFIXES = (
    ("sea_ice_", "ice"),
    ("land_ice_", "ice"),
    ("sea_water_", "ocean"),
    ("ocean_", "ocean"),
    ("sea_surface_", "ocean"),
    ("soil_", "land"),
)
_ALIASES = {
    "sea_ice": "ice",
    "seaice": "ice",
    "cryosphere": "ice",
    "atmos": "atmosphere",
    "ocnbgchem": "ocean",
    "land_ice": "ice",
}


def component_of(
    name: str, attrs: Mapping[str, Any], overrides: Mapping[str, str] | None = None
) -> str:
    """The climate component of input variable ``name``.

    Examples
    --------
    >>> component_of("sst", {"standard_name": "sea_surface_temperature"})
    'ocean'
    >>> component_of("my_sst", {}, {"my_sst": "ocean"})
    'ocean'
    """
    if overrides and name in overrides:
        return overrides[name]
    std = str(attrs.get("standard_name", ""))
    for comp, names in _STANDARD_NAMES.items():
        if std in names:
            return comp
    for prefix, comp in _PREFIXES:
        if std.startswith(prefix):
            return comp
    given = str(attrs.get("component", "")).lower()
    given = _ALIASES.get(given, given)
    return given if given in COMPONENTS else "other"


@dataclass
class Interactions:
    """Shares of the total |attribution| per target (rows) on variables and components."""

    variables: list[str]
    components: dict[str, str]
    rows: dict[str, dict[str, float]]  # target -> variable -> share
    method: str
    samples: dict[str, int] = field(default_factory=dict)  # target -> samples attributed
    skipped: dict[str, str] = field(default_factory=dict)  # target -> why it has no row

    def component_shares(self, target: str) -> dict[str, float]:
        """Share of each component present among the inputs (summed over its variables)."""
        out = {c: 0.0 for c in COMPONENTS if c in self.components.values()}
        for var, share in self.rows[target].items():
            out[self.components[var]] += share
        return out

    def ranking(self, target: str) -> list[str]:
        """Components of ``target`` from the largest share to the smallest."""
        shares = self.component_shares(target)
        return sorted(shares, key=lambda c: (-np.nan_to_num(shares[c], nan=-1.0), c))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (NaN as null)."""

        def clean(d: dict[str, float]) -> dict[str, float | None]:
            return {k: (round(float(v), 6) if np.isfinite(v) else None) for k, v in d.items()}

        return {
            "method": self.method,
            "measure": "share of the total absolute attribution (sum over samples, steps and cells)",
            "components_of": self.components,
            "targets": {
                t: {
                    "samples": self.samples.get(t),
                    "variables": clean(row),
                    "components": clean(self.component_shares(t)),
                    "ranking": self.ranking(t),
                }
                for t, row in self.rows.items()
            },
            "skipped": self.skipped,
        }


def interaction_matrix(
    attributions: Mapping[str, np.ndarray],
    variables: list[str],
    components: Mapping[str, str],
    method: str,
) -> Interactions:
    """Rows of shares from attributions ``[n, V, T, H, W]`` (NaN = invalid) per target."""
    rows, samples = {}, {}
    for target, attr in attributions.items():
        samples[target] = int(attr.shape[0])
        mass = np.nansum(np.abs(attr), axis=tuple(i for i in range(attr.ndim) if i != 1))
        total = float(mass.sum())
        rows[target] = {
            v: (float(m) / total if total > 0 else float("nan")) for v, m in zip(variables, mass)
        }
    comps = {v: components[v] for v in variables}
    return Interactions(list(variables), comps, rows, method, samples)


def write_interactions(table: Interactions, out: Path) -> list[Path]:
    """``interactions.json`` and a long-form ``interactions.csv`` (target, kind, name, share)."""
    data = table.to_dict()
    json_path, csv_path = out / "interactions.json", out / "interactions.csv"
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(data, indent=2))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["target", "kind", "name", "component", "share"])
    for target, row in data["targets"].items():
        for var, share in row["variables"].items():
            writer.writerow(
                [target, "variable", var, table.components[var], "" if share is None else share]
            )
        for comp, share in row["components"].items():
            writer.writerow([target, "component", comp, comp, "" if share is None else share])
    with atomic_path(csv_path) as tmp:
        tmp.write_text(buf.getvalue())
    return [json_path, csv_path]
