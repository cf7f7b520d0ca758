"""Regional grids across 0°: contiguous however the file stores them, on every path."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import yaml

from climatune.cli import main
from climatune.config import load_config
from climatune.data.grid import coarsen
from climatune.data.io import canonicalize, open_dataset
from climatune.data.regions import Region
from climatune.data.view import build_view
from climatune.explain.targets import parse_target
from climatune.testing import create_test_data, tiny_config

WEST, EAST, STEP = -80.0, 40.0, 2.5
LON = np.arange(WEST, EAST + STEP / 2, STEP)  # the canonical axis: -80 ... 40


def _lon_180(ntime: int = 120, nlat: int = 8) -> xr.Dataset:
    """``create_test_data`` cut to -80..40°E: ``tas = 200 + lat + lon/1000 + step``."""
    ds = create_test_data(ntime=ntime, nlat=nlat, nlon=144, lon_180=True)
    return ds.sel(lon=slice(WEST, EAST))


def _past_360(ds: xr.Dataset) -> xr.Dataset:
    """The same cells stored as 280 ... 400."""
    return ds.assign_coords(lon=ds.lon + 360.0)


def _split(ds: xr.Dataset) -> xr.Dataset:
    """The same cells stored in [0, 360) ascending: 0 ... 40, 280 ... 357.5."""
    return ds.assign_coords(lon=np.mod(ds.lon, 360.0)).sortby("lon")


def _write(ds: xr.Dataset, path):
    ds.to_netcdf(path)
    return path


def _view(path, *sets):
    """The task view of ``path`` under the base split and ``sets``."""
    base = [
        f"data.path={path}",
        "data.variables=[tas]",
        "data.split.train=[2000, 2005]",
        "data.split.val=[2006, 2007]",
        "data.split.test=[2008, 2009]",
    ]
    cfg = load_config(None, base + list(sets))
    return build_view(cfg.data, cfg.task)


@pytest.fixture
def seam_file(tmp_path):
    """A -80..40°E regional file stored in the split form that sorting used to produce."""
    return _write(_split(_lon_180()), tmp_path / "seam.nc")


@pytest.mark.parametrize("form", [lambda ds: ds, _past_360, _split], ids=["180", "360", "split"])
def test_every_storage_of_a_grid_across_0_reads_as_one_contiguous_axis(tmp_path, form):
    ds = open_dataset(_write(form(_lon_180(ntime=3)), tmp_path / "a.nc"))
    np.testing.assert_array_equal(ds.lon.values, LON)
    step = xr.DataArray(np.arange(3.0), dims="time")
    expected = 200.0 + ds.lat + ds.lon / 1000.0 + step  # values follow their coordinates
    np.testing.assert_allclose(ds.tas, expected.transpose("time", "lat", "lon"), rtol=1e-6)
    xr.testing.assert_identical(canonicalize(ds), ds)  # reading it again changes nothing


def test_global_grids_stay_ascending_from_0(tmp_path):
    for lon_180 in (True, False):
        raw = create_test_data(ntime=2, nlon=144, lon_180=lon_180)
        ds = open_dataset(_write(raw, tmp_path / f"g{lon_180}.nc"))
        np.testing.assert_array_equal(ds.lon.values, np.arange(0.0, 360.0, STEP))
        raw_lon = xr.where(ds.lon >= 180, ds.lon - 360, ds.lon) if lon_180 else ds.lon
        expected = 200.0 + ds.lat + raw_lon / 1000.0 + xr.DataArray([0.0, 1.0], dims="time")
        np.testing.assert_allclose(ds.tas, expected.transpose("time", "lat", "lon"), rtol=1e-6)


def test_periodic_padding_only_on_the_global_grid(tmp_path, seam_file):
    assert not _view(seam_file).periodic_lon
    global_file = _write(create_test_data(ntime=120, nlon=144, lon_180=True), tmp_path / "g.nc")
    view = _view(global_file)
    assert view.periodic_lon and view.fields.lon.values[0] == 0.0


def test_downscale_blocks_never_mix_far_longitudes(seam_file):
    view = _view(seam_file, "task.kind=downscale", "task.factor=2")
    blocks = coarsen(view.fields.tas.isel(time=0), 2)
    np.testing.assert_array_equal(blocks.lon.values, np.arange(WEST + 1.25, EAST - 2.5, 5.0))
    expected = 200.0 + blocks.lat + blocks.lon / 1000.0  # step 0
    np.testing.assert_allclose(blocks, expected.transpose("lat", "lon"), rtol=1e-6)
    # tas is linear in lat and lon, so between coarse centres the input equals the truth,
    # right across 0°
    fine = view.fields.tas.isel(time=0)
    inside = (
        (fine.lon > blocks.lon.min())
        & (fine.lon < blocks.lon.max())
        & (fine.lat > blocks.lat.min())
        & (fine.lat < blocks.lat.max())
    )
    assert bool(inside.sel(lon=[-2.5, 0.0, 2.5]).all("lon").any())
    error = abs(view.input_fields().tas.isel(time=0) - fine).where(inside)
    assert float(error.max()) < 1e-3


@pytest.mark.parametrize("west", [-10.0, 350.0])
def test_region_across_0_in_either_convention_cuts_the_same_cells(seam_file, west):
    ds = open_dataset(seam_file)
    box = Region(-40, 40, west, 30)
    mask = box.mask(ds)
    columns = np.flatnonzero(mask.any("lat").values)
    assert np.array_equal(columns, np.arange(columns[0], columns[-1] + 1))  # one block
    np.testing.assert_array_equal(ds.lon.values[columns], np.arange(-10.0, 30.1, STEP))
    sub = box.subset(ds, halo=5)
    np.testing.assert_array_equal(sub.lon.values, np.arange(-15.0, 35.1, STEP))
    expected = 200.0 + sub.lat + sub.lon / 1000.0
    np.testing.assert_allclose(sub.tas.isel(time=0), expected.transpose("lat", "lon"), rtol=1e-6)


@pytest.mark.parametrize("box", [(-70, -50), (290, 310)])
def test_region_keeps_the_longitudes_of_the_grid(seam_file, box):
    ds = open_dataset(seam_file)
    sub = Region(-40, 40, *box).subset(ds)
    np.testing.assert_array_equal(sub.lon.values, np.arange(-70.0, -49.9, STEP))


@pytest.mark.parametrize(
    ("region", "lon"),
    [
        ((), LON),
        (
            ("data.region.lat=[-40, 40]", "data.region.lon=[350, 30]", "data.region.halo=5"),
            np.arange(-15.0, 35.1, STEP),
        ),
    ],
    ids=["whole", "region"],
)
def test_static_fields_and_explain_boxes_on_a_grid_across_0(tmp_path, seam_file, region, lon):
    src = _lon_180(ntime=1)
    orog = (src.tas.isel(time=0, drop=True) * 0 + src.lon).rename("orog")  # the file's lon
    static = _write(_past_360(orog.to_dataset()), tmp_path / "orog.nc")
    sets = (f"data.static.path={static}", "data.static.variables=[orog]", *region)
    view = _view(seam_file, *sets)
    np.testing.assert_array_equal(view.fields.lon.values, lon)
    # each cell gets its own static value, read from a file stored as 280 ... 400
    np.testing.assert_allclose(view.static.orog.isel(lat=0).values, view.fields.lon.values)
    a = parse_target("tas@lat=-40:40,lon=-10:0", view, ["tas"], {"tas": "K"})
    b = parse_target("tas@lat=-40:40,lon=350:360", view, ["tas"], {"tas": "K"})
    assert a.label == b.label and bool((a.mask == b.mask).all())
    np.testing.assert_array_equal(
        view.fields.lon.values[a.mask.any("lat").values], np.arange(-10.0, 0.1, STEP)
    )


def test_pretrain_and_predict_a_downscaler_across_0(tmp_path):
    raw = create_test_data(ntime=96, nlat=16, nlon=144, lon_180=True).sel(lon=slice(-40, 37.5))
    path = _write(_split(raw), tmp_path / "europe.nc")  # stored 0 ... 37.5, 320 ... 357.5
    cfg = tiny_config(
        path, "trainer.max_epochs=1", "data.variables=[tas]", "task.kind=downscale", "task.factor=2"
    )
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    run = tmp_path / "run"
    assert main(["pretrain", "--config", str(config), "--out", str(run)]) == 0
    out = tmp_path / "pred.nc"
    assert main(["predict", str(run), "--input", str(path), "--output", str(out)]) == 0
    pred = xr.open_dataset(out)
    np.testing.assert_array_equal(pred.lon.values, np.arange(-40.0, 37.6, STEP))
    assert pred.lon.attrs == {"units": "degrees_east", "standard_name": "longitude", "axis": "X"}
    assert bool(np.isfinite(pred.tas).all()) and 150 < float(pred.tas.mean()) < 350
    np.testing.assert_array_equal(open_dataset(out).lon.values, pred.lon.values)  # reads back
