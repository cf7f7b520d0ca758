"""TaskView and TaskSamples: what each task's samples contain, and that splits never mix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from climatune.config import load_config
from climatune.data.samples import TaskSamples, fit_normalizer, static_channels
from climatune.data.view import build_view
from climatune.errors import ClimatuneError
from climatune.testing import create_test_data


@pytest.fixture
def monthly(tmp_path):
    path = tmp_path / "m.nc"
    ds = create_test_data(ntime=120, nlat=8, nlon=16, nlevel=2, index=True)
    ds["sst"] = ds.tas.where(ds.lat < 40).assign_attrs(
        units="K", standard_name="sea_surface_temperature"
    )
    ds.to_netcdf(path)
    return path


def _view(path, *sets):
    """The task view of ``path`` under the base split and ``sets``."""
    base = [
        f"data.path={path}",
        "data.split.train=[2000, 2005]",
        "data.split.val=[2006, 2007]",
        "data.split.test=[2008, 2009]",
    ]
    cfg = load_config(None, base + list(sets))
    return build_view(cfg.data, cfg.task)


def test_forecast_samples_hold_history_and_lead(monthly):
    view = _view(monthly, "data.variables=[tas]", "task.history=3", "task.lead=2")
    norm = fit_normalizer(view)
    data = TaskSamples(view, "train", norm)
    item = data[0]
    assert item["fields"].shape == (1, 3, 8, 16)
    anchor = int(item["anchor"])
    mean, std = norm.scale("tas")
    # tas = 200 + lat + lon/1000 + step: the target is the field two steps after the anchor
    expected = (view.fields.tas.isel(time=anchor + 2).values - mean) / std
    np.testing.assert_allclose(item["target"][0].numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(
        item["fields"][0, -1].numpy(),
        (view.fields.tas.isel(time=anchor).values - mean) / std,
        rtol=1e-5,
    )


def test_levels_become_variables_and_nan_is_masked(monthly):
    view = _view(monthly, "data.variables=[tas, z, sst]", "data.levels={z: [850]}")
    assert view.inputs == ["tas", "z850", "sst"]
    norm = fit_normalizer(view)
    item = TaskSamples(view, "val", norm)[0]
    assert torch.isfinite(item["fields"]).all()  # inputs: NaN read as the mean (0)
    assert torch.isnan(item["target"][2]).any()  # targets keep NaN for the loss mask
    names, static = static_channels(view)
    assert names[:5] == ["sin_lat", "cos_lat", "sin_lon", "cos_lon", "valid_mask"]
    assert 0 < static[names.index("valid_mask")].mean() < 1


def test_downscale_inputs_are_coarsened(monthly):
    view = _view(monthly, "data.variables=[tas]", "task.kind=downscale", "task.factor=2")
    coarse = view.input_fields().tas.isel(time=0).values
    fine = view.fields.tas.isel(time=0).values
    assert coarse.shape == fine.shape and not np.allclose(coarse, fine)
    assert abs(coarse.mean() - fine.mean()) < 1.0


def test_index_task_targets_the_series(monthly):
    view = _view(
        monthly,
        "data.variables=[tas]",
        "task.kind=index",
        "task.index.variable=nino34",
        "task.lead=1",
    )
    data = TaskSamples(view, "test", fit_normalizer(view))
    assert data[0]["target"].shape == (1,)
    assert view.truth("test").nino34.dims == ("time",)


def test_reconstruct_masks_patches(monthly):
    view = _view(
        monthly,
        "data.variables=[tas]",
        "task.kind=reconstruct",
        "task.mask_patch=4",
        "task.mask_ratio=0.5",
    )
    data = TaskSamples(view, "train", fit_normalizer(view), mask_ratio=0.5, mask_patch=4)
    item = data[3]
    zeros = (item["fields"] == 0).float().mean()
    assert 0.1 < zeros < 0.9
    assert torch.equal(item["fields"], data[3]["fields"])  # seeded: the same mask each time


def test_no_sample_touches_another_split(monthly):
    view = _view(monthly, "data.variables=[tas]", "task.history=4", "task.lead=3")
    touched = {}
    for split, anchors in view.anchors.items():
        steps = set()
        for a in anchors:
            steps |= set(range(a - 3, a + 4))
        touched[split] = steps
    assert not touched["train"] & touched["val"]
    assert not touched["val"] & touched["test"]
    assert not touched["train"] & touched["test"]


def test_split_leaving_a_block_empty_is_an_error(monthly):
    with pytest.raises(ClimatuneError, match="leaves no samples"):
        _view(
            monthly,
            "data.variables=[tas]",
            "data.split.val=[2006, 2006]",
            "task.history=12",
            "task.lead=6",
        )


def test_train_fraction_keeps_the_latest_samples(monthly):
    full = _view(monthly, "data.variables=[tas]")
    half = _view(monthly, "data.variables=[tas]", "data.train_fraction=0.5")
    assert half.anchors["train"].size == pytest.approx(full.anchors["train"].size / 2, abs=1)
    assert half.anchors["train"][-1] == full.anchors["train"][-1]


def test_statistics_of_a_split_in_several_blocks_never_see_the_block_between(monthly):
    """Cross-validation folds train on blocks around the validation block: the steps the
    training samples read, and the statistics fitted on them, leave that block out."""
    view = _view(
        monthly,
        "data.variables=[tas]",
        "task.history=2",
        "task.lead=1",
        "data.split.train=[[2000, 2002], [2005, 2007]]",
        "data.split.val=[2003, 2004]",
    )
    years = view.fields.time.dt.year.values
    train, val = view.steps("train"), view.steps("val")
    assert set(years[train]) == {2000, 2001, 2002, 2005, 2006, 2007}
    assert not set(train) & set(val)
    want = np.concatenate(
        [
            view.fields.tas.values[(years >= 2000) & (years <= 2002)].ravel(),
            view.fields.tas.values[(years >= 2005) & (years <= 2007)].ravel(),
        ]
    ).astype(float)
    assert fit_normalizer(view).mean_["tas"] == pytest.approx(want.mean(), rel=1e-9)


def test_no_sample_spans_a_missing_month(tmp_path):
    ds = create_test_data(ntime=120, nlat=8, nlon=16)
    path = tmp_path / "hole.nc"
    ds.drop_isel(time=[30]).to_netcdf(path)  # July 2002 is missing
    view = _view(path, "task.history=2", "task.lead=1")
    months = view.fields.time.dt.year.values * 12 + view.fields.time.dt.month.values
    for split, anchors in view.anchors.items():
        for anchor in anchors:
            window = months[anchor - 1 : anchor + 2]
            assert np.all(np.diff(window) == 1), (split, anchor, window)
    # June and August 2002 (indices 29 and 30) anchor samples that would reach across the hole
    assert view.anchors["train"].tolist() == [*range(1, 29), *range(31, 70)]


def test_a_whole_globe_region_keeps_every_longitude(monthly):
    view = _view(monthly, "data.variables=[tas]", "data.region={lat: [-30, 30], lon: [-180, 180]}")
    assert view.fields.lon.size == 16 and view.periodic_lon
    assert int(view.region_mask.sum()) == int((abs(view.fields.lat) <= 30).sum()) * 16


def test_the_weights_are_the_scored_region_read_with_its_halo(monthly):
    """The domain is the region plus its halo; the weights are cos(lat) inside the region
    (mean 1 over it) and 0 on the halo, the one place where the region is scored."""
    view = _view(
        monthly, "data.variables=[tas]", "data.region={lat: [-30, 30], lon: [90, 180], halo: 30}"
    )
    inside = view.region_mask.values
    assert inside.any() and not inside.all()
    w = view.weights().values
    assert (w[~inside] == 0).all() and w[inside].mean() == pytest.approx(1.0)
    cos = np.cos(np.deg2rad(view.fields.lat.values))[:, None] * np.ones(inside.shape)
    np.testing.assert_allclose(w[inside] / cos[inside], w[inside][0] / cos[inside][0])


@pytest.mark.parametrize("fill", [9.96921e36, 1e20, -1e30])
def test_undeclared_fill_values_are_missing_not_data(tmp_path, fill, caplog):
    ds = create_test_data(ntime=120, nlat=8, nlon=16)
    clean = ds.tas.values.copy()
    ds["tas"][5:8, 2, 3] = fill  # stored as plain numbers: no _FillValue says what they are
    path = tmp_path / "fill.nc"
    ds.to_netcdf(path, encoding={"tas": {"_FillValue": None}})
    view = _view(path, "data.variables=[tas]")
    tas = view.fields.tas.values
    assert np.isnan(tas[5:8, 2, 3]).all()
    keep = np.ones(tas.shape, bool)
    keep[5:8, 2, 3] = False
    np.testing.assert_array_equal(tas[keep], clean[keep])
    assert view.fields.tas.attrs["units"] == "K"
    assert "'tas' (3 values) hold fill values (|x| >= 1e+15)" in caplog.text
    norm = fit_normalizer(view)
    assert 200 < norm.mean_["tas"] < 400 and norm.std_["tas"] < 100


def test_fill_values_do_not_leak_into_coarse_downscaling_inputs(tmp_path):
    ds = create_test_data(ntime=120, nlat=8, nlon=16)
    ds["tas"][:, 2, 3] = 1e20
    path = tmp_path / "fill.nc"
    ds.to_netcdf(path, encoding={"tas": {"_FillValue": None}})
    view = _view(path, "data.variables=[tas]", "task.kind=downscale", "task.factor=2")
    coarse = view.input_fields().tas.values
    assert np.nanmax(np.abs(coarse)) < 400


def test_an_input_with_no_valid_cell_in_the_region_is_dropped_with_a_note(monthly, caplog):
    # sst is NaN north of 40°N: a region at 50-80°N (halo 5) reads none of it
    view = _view(
        monthly,
        "data.variables=[tas, sst, pr]",
        "data.targets=[tas]",
        "data.region={lat: [50, 80], lon: [0, 90], halo: 5}",
    )
    assert view.inputs == ["tas", "pr"] and view.targets == ["tas"]
    assert "sst" not in view.fields
    assert "note: input(s) sst have no valid cell in the domain read for region" in caplog.text
    norm = fit_normalizer(view)
    assert TaskSamples(view, "train", norm)[0]["fields"].shape[0] == 2


def test_a_target_with_no_valid_cell_in_the_region_is_an_error(monthly):
    with pytest.raises(ClimatuneError, match="target 'sst' has no valid cell in the domain"):
        _view(
            monthly,
            "data.variables=[tas, sst]",
            "data.targets=[sst]",
            "data.region={lat: [50, 80], lon: [0, 90]}",
        )
    with pytest.raises(ClimatuneError, match="no input has a valid cell"):
        _view(
            monthly,
            "data.variables=[sst]",
            "data.targets=[tas]",
            "task.lead=1",
            "data.region={lat: [50, 80], lon: [0, 90]}",
        )


def test_without_a_region_an_all_nan_variable_is_still_an_error(tmp_path):
    ds = create_test_data(ntime=120, nlat=8, nlon=16)
    ds["pr"] = ds.pr * np.nan
    ds.to_netcdf(tmp_path / "nan.nc")
    with pytest.raises(ClimatuneError, match="'pr' is entirely NaN"):
        _view(tmp_path / "nan.nc", "data.variables=[tas, pr]", "data.targets=[tas]")


def test_a_named_region_scores_its_polygon_and_reads_its_box_with_the_halo(monthly):
    view = _view(monthly, "data.variables=[tas]", "data.region={name: EAS, halo: 10}")
    box = view.fields
    assert box.lat.values.tolist() == pytest.approx([10.714286, 32.142857, 53.571429])
    inside = view.region_mask.values
    w = view.weights().values
    assert inside.any() and (w[~inside] == 0).all() and w[inside].mean() == pytest.approx(1.0)


def test_an_index_over_a_named_region_averages_its_polygon_only(monthly):
    from climatune.data.ar6 import named_region

    view = _view(
        monthly,
        "data.variables=[pr]",
        "task.kind=index",
        "task.index.variable=tas",
        "task.index.region={name: North Pacific}",  # across the dateline
        "task.lead=1",
    )
    ds = create_test_data(ntime=120, nlat=8, nlon=16, nlevel=2, index=True)
    inside = named_region("NPO").mask(ds)
    box = named_region("NPO").box.mask(ds)
    assert 0 < int(inside.sum()) < int(box.sum())  # the polygon leaves out cells of its box
    w = np.cos(np.deg2rad(ds.lat)) * inside
    expected = ds.tas.weighted(w).mean(("lat", "lon"))
    np.testing.assert_allclose(view.index.values, expected.values, rtol=1e-6)
