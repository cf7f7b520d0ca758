"""Climate components of variables and the interaction matrix."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from climatune.explain.interactions import component_of, interaction_matrix, write_interactions


@pytest.mark.parametrize(
    ("name", "attrs", "expected"),
    [
        ("tas", {"standard_name": "air_temperature"}, "atmosphere"),
        ("zg500", {"standard_name": "geopotential_height"}, "atmosphere"),
        ("sst", {"standard_name": "sea_surface_temperature"}, "ocean"),
        ("thetao", {"standard_name": "sea_water_potential_temperature"}, "ocean"),
        ("siconc", {"standard_name": "sea_ice_area_fraction"}, "ice"),
        ("sithick", {"standard_name": "sea_ice_thickness"}, "ice"),
        ("mrso", {"standard_name": "soil_moisture_content"}, "land"),
        ("ice", {"component": "sea_ice"}, "ice"),  # the synthetic archive's attribute
        ("x", {}, "other"),
    ],
)
def test_component_from_standard_name(name: str, attrs: dict, expected: str) -> None:
    assert component_of(name, attrs) == expected


def test_config_overrides_the_standard_name() -> None:
    assert (
        component_of("sst", {"standard_name": "sea_surface_temperature"}, {"sst": "atmosphere"})
        == "atmosphere"
    )


def test_shares_sum_absolute_mass_and_skip_nan(tmp_path: Path) -> None:
    attr = np.zeros((2, 3, 1, 4, 4))
    attr[:, 0] = -1.0  # atmosphere: 32 in |mass|
    attr[:, 1, :, :2] = 4.0  # ocean: 16 cells x 4 = 64
    attr[:, 2] = np.nan  # ice: invalid everywhere
    table = interaction_matrix(
        {"tas": attr},
        ["tas", "sst", "siconc"],
        {"tas": "atmosphere", "sst": "ocean", "siconc": "ice"},
        "ig",
    )
    assert table.rows["tas"] == pytest.approx({"tas": 1 / 3, "sst": 2 / 3, "siconc": 0.0})
    assert table.ranking("tas") == ["ocean", "atmosphere", "ice"]
    json_path, csv_path = write_interactions(table, tmp_path)
    data = json.loads(json_path.read_text())
    assert data["targets"]["tas"]["components"]["ocean"] == pytest.approx(2 / 3, abs=1e-6)
    rows = list(csv.DictReader(csv_path.open()))
    assert {(r["kind"], r["name"]) for r in rows} >= {("variable", "sst"), ("component", "ice")}
    assert len(rows) == 6


def test_zero_attribution_gives_null_shares(tmp_path: Path) -> None:
    table = interaction_matrix({"y": np.zeros((1, 1, 1, 2, 2))}, ["a"], {"a": "ocean"}, "saliency")
    json_path, _ = write_interactions(table, tmp_path)
    assert json.loads(json_path.read_text())["targets"]["y"]["variables"] == {"a": None}
