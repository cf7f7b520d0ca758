"""Named IPCC AR6 regions: read from package data, found by name, masked by polygon."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from climatune.data.ar6 import ar6_regions, list_named_regions, named_region
from climatune.data.settings import RegionConfig
from climatune.errors import ClimatuneError


def _grid(lat, lon):
    return xr.Dataset(coords={"lat": np.asarray(lat, float), "lon": np.asarray(lon, float)})


def test_the_table_holds_58_regions_with_dateline_pairs_joined():
    regions = ar6_regions()
    assert len(regions) == 58
    assert not [a for a in regions if "*" in a]
    for abbrev in ("RAR", "NPO", "EPO", "SPO"):
        assert len(regions[abbrev].parts) == 2
    rows = {r["abbrev"]: r for r in list_named_regions()}
    assert rows["WNA"] == {"abbrev": "WNA", "name": "W.North-America", "surface": "land"}
    assert rows["NPO"]["surface"] == "ocean" and rows["MED"]["surface"] == "land-ocean"


@pytest.mark.parametrize(
    ("text", "abbrev"),
    [
        ("WNA", "WNA"),
        ("wna", "WNA"),
        ("Western North America", "WNA"),
        ("W.North-America", "WNA"),
        ("Mediterranean", "MED"),
        ("North-Western North America", "NWN"),
        ("Southeast Asia", "SEA"),
        ("Western and Central Europe", "WCE"),
        ("Equatorial Indian Ocean", "EIO"),
        ("North Pacific", "NPO"),
    ],
)
def test_a_region_is_found_by_acronym_or_name(text, abbrev):
    assert named_region(text).abbrev == abbrev


def test_an_unknown_region_names_the_closest_and_the_listing():
    with pytest.raises(ClimatuneError, match=r"did you mean 'WNA'.*climatune data regions"):
        named_region("WNAA")


def test_bounding_boxes_cross_the_dateline_and_0_degrees_the_short_way():
    regions = ar6_regions()
    assert str(regions["RAR"].box) == "lat=65:82,lon=40:192"  # two parts, across 180°
    assert str(regions["MED"].box) == "lat=30:45,lon=350:40"  # across 0°
    assert str(regions["WNA"].box) == "lat=33.8:50,lon=230:255"
    assert regions["ARO"].box.whole_globe


@pytest.mark.parametrize("abbrev", ["MED", "RAR", "NPO", "WNA"])
def test_masks_agree_on_0_360_and_minus_180_180_grids(abbrev):
    lat = np.arange(-88.75, 90, 2.5)
    lon360 = np.arange(1.25, 360, 2.5)
    region = named_region(abbrev)
    east = region.mask(_grid(lat, lon360))
    west = region.mask(_grid(lat, np.where(lon360 >= 180, lon360 - 360, lon360)))
    assert int(east.sum()) > 10
    np.testing.assert_array_equal(east.values, west.values)


def test_the_mask_is_the_polygon_not_its_box():
    # WNA runs from (-130, 50) down to (-122.5, 33.8): its south-west corner is outside
    grid = _grid(np.arange(34.5, 50, 1.0), np.arange(230.5, 255, 1.0))
    mask = named_region("WNA").mask(grid)
    assert not bool(mask.sel(lat=35.5, lon=230.5))  # inside the box, outside the polygon
    assert bool(mask.sel(lat=49.5, lon=230.5)) and bool(mask.sel(lat=35.5, lon=250.5))
    assert 0 < int(mask.sum()) < mask.size


def test_a_regional_grid_across_0_is_cut_and_masked():
    grid = _grid(np.arange(20.5, 60, 1.0), np.arange(-30.5, 60, 1.0))
    region = named_region("MED")
    domain = region.subset(grid, halo=2)
    assert float(domain.lon.min()) == -11.5 and float(domain.lon.max()) == 41.5
    mask = region.mask(domain)
    assert bool(mask.sel(lat=40.5, lon=-5.5)) and bool(mask.sel(lat=40.5, lon=15.5))
    assert not bool(mask.sel(lat=28.5, lon=15.5))  # in the halo


def test_a_region_with_no_cell_of_the_grid_is_refused():
    with pytest.raises(ClimatuneError, match="NZ .*holds no cell centre"):
        named_region("NZ").subset(_grid([40.0, 45.0], [230.0, 235.0]))


def test_region_config_takes_a_name_a_string_or_a_box():
    assert RegionConfig.model_validate("MED").shape().abbrev == "MED"
    named = RegionConfig.model_validate({"name": "Western North America", "halo": 5})
    assert named.shape().abbrev == "WNA" and named.halo == 5
    box = RegionConfig.model_validate({"lat": [30, 50], "lon": [235, 260]})
    assert str(box.shape()) == "lat=30:50,lon=235:260"
    with pytest.raises(ValueError, match="not both"):
        RegionConfig.model_validate({"name": "WNA", "lat": [30, 50], "lon": [235, 260]})
    with pytest.raises(ValueError, match="needs lat and lon"):
        RegionConfig.model_validate({"lat": [30, 50]})
    with pytest.raises(ValueError, match="unknown region"):
        RegionConfig.model_validate({"name": "Atlantis"})


def test_data_regions_lists_every_region(capsys):
    from climatune.cli import main

    assert main(["data", "regions"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "CC-BY 4.0" in lines[0] and len(lines) == 59
    assert lines[4].split() == ["WNA", "land", "W.North-America"]
    assert "MED   land-ocean Mediterranean" in lines


def test_an_unknown_region_is_one_line_and_writes_nothing(tmp_path, capsys):
    from climatune.cli import main

    config, out = tmp_path / "c.yaml", tmp_path / "run"
    config.write_text("data: {path: sample://E1_north_america}\n")
    argv = ["pretrain", "--config", str(config), "--set", "data.region=Atlantis"]
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("climatune: error: config key 'data.region'")
    assert "unknown region 'Atlantis'" in err[0] and not out.exists()
