"""Regions: boxes inside the grid, across 0° and 180°, with a halo."""

from __future__ import annotations

import numpy as np
import pytest

from climatune.data.regions import Region, parse_region
from climatune.errors import ClimatuneError
from climatune.testing import create_test_data


def test_subset_and_mask_inside_the_box():
    ds = create_test_data(nlat=16, nlon=36)
    box = Region(-20, 20, 100, 200)
    sub = box.subset(ds)
    assert float(sub.lat.min()) >= -20 and float(sub.lat.max()) <= 20
    assert float(sub.lon.min()) >= 100 and float(sub.lon.max()) <= 200
    assert bool(box.mask(sub).all())
    # values follow their coordinates: tas = 200 + lat + lon/1000 + step
    expected = 200 + sub.lat + sub.lon / 1000
    np.testing.assert_allclose(sub.tas.isel(time=0), expected.transpose("lat", "lon"), rtol=1e-6)


def test_box_crossing_zero_is_contiguous():
    ds = create_test_data(nlat=8, nlon=36)  # lon 0, 10, ..., 350
    sub = Region(-80, 80, 340, 20).subset(ds)
    assert list(sub.lon.values) == [-20.0, -10.0, 0.0, 10.0, 20.0]
    np.testing.assert_allclose(
        sub.tas.isel(time=0, lat=0).values,
        200 + ds.lat.values[0] + np.array([340, 350, 0, 10, 20]) / 1000,
        rtol=1e-6,
    )


def test_box_crossing_180_on_a_0_360_grid():
    ds = create_test_data(nlat=8, nlon=36)
    sub = Region(-80, 80, 170, 190).subset(ds)
    assert list(sub.lon.values) == [170.0, 180.0, 190.0]


def test_halo_widens_the_domain_but_not_the_mask():
    ds = create_test_data(nlat=31, nlon=72)
    box = Region(-10, 10, 100, 120)
    wide = box.subset(ds, halo=10)
    assert wide.sizes["lon"] > box.subset(ds).sizes["lon"]
    mask = box.mask(wide)
    assert 0 < int(mask.sum()) < mask.size


def test_region_outside_grid_is_an_error():
    ds = create_test_data(nlat=8, nlon=8).sel(lon=slice(0, 100))
    with pytest.raises(ClimatuneError, match="outside the grid"):
        Region(10, 20, 200, 250).subset(ds)


def test_parse_region():
    assert parse_region("lat=30:50,lon=235:260") == Region(30, 50, 235, 260)
    with pytest.raises(ClimatuneError, match="must look like"):
        parse_region("30:50")


@pytest.mark.parametrize("lon", [(0, 360), (-180, 180), (90, 450), (-360, 0)])
def test_a_box_360_degrees_wide_is_the_whole_globe(lon):
    ds = create_test_data(nlat=8, nlon=16)
    box = Region(-30, 30, *lon)
    sub = box.subset(ds)
    assert sub.lon.values.tolist() == ds.lon.values.tolist()  # every longitude, in order
    assert sub.lat.values.tolist() == [v for v in ds.lat.values.tolist() if -30 <= v <= 30]
    assert bool(box.mask(sub).all()) and str(box).endswith(
        f"lon={lon[0] % 360:g}:{lon[0] % 360 + 360:g}"
    )


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ((-5, float("nan"), 0, 10), "must all be finite"),
        ((-5, 5, 0, float("inf")), "must all be finite"),
        ((80, 95, 0, 10), "goes beyond a pole"),
        ((-5, 5, 0, 400), "spans more than 360°"),
    ],
)
def test_impossible_boxes_are_refused(bounds, message):
    with pytest.raises(ClimatuneError, match=message):
        Region(*bounds)


def test_a_box_the_long_way_round_a_regional_grid_is_refused():
    """On a regional grid across 0° (-80..40), 20:350 is two pieces that are not neighbours."""
    ds = create_test_data(nlat=8, nlon=36).isel(lon=[*range(28, 36), *range(0, 5)])
    ds = ds.assign_coords(lon=(ds.lon + 180) % 360 - 180).sortby("lon")  # -80 .. 40
    with pytest.raises(ClimatuneError, match="two separate parts"):
        Region(-80, 80, 20, 350).subset(ds)
    sub = Region(-80, 80, 350, 20).subset(ds)  # one piece: fine
    assert list(sub.lon.values) == [-10.0, 0.0, 10.0, 20.0]
    # on a global grid the same box wraps round the back of the globe, which is contiguous
    assert Region(-80, 80, 20, 350).subset(create_test_data(nlat=8, nlon=36)).lon.size == 34


def test_a_grid_one_column_short_of_the_globe_is_regional():
    from climatune.data.grid import is_global

    lon = np.arange(32) * 11.25
    assert is_global(lon) and not is_global(lon[:-1]) and is_global(lon + 1e-4)
