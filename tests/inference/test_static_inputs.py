"""Static inputs read the same on every grid a model meets: position encodings at several
wavelengths, and user fields z-scored with the statistics of the grid it was trained on."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from climatune.config import load_config
from climatune.data.samples import (
    position_channels,
    static_channels,
    static_record,
    with_static_record,
)
from climatune.data.view import build_view
from climatune.errors import ClimatuneError
from climatune.inference import load_model
from climatune.inference.predict import margined_static, model_view
from climatune.testing import tiny_archive, tiny_config
from climatune.tuning.search import tune_command
from climatune.workflows import finetune, pretrain
from climatune.workflows.evaluate import evaluate_command

REGION = ("data.region.lat=[-30, 60]", "data.region.lon=[40, 200]", "data.region.halo=0")


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> tuple:
    """The tiny archive and a static field on its grid that grows northward, so that a
    region's own mean and spread are not the whole grid's."""
    root = tmp_path_factory.mktemp("static")
    path = tiny_archive(root / "tiny.nc")
    grid = xr.open_dataset(path).tas.isel(time=0, drop=True)
    orog = (grid * 0 + 100.0 * grid.lat + grid.lon).rename("orog")
    relief = (orog * 0 + grid.lat).rename("relief")  # another field, for a wrong config
    lake = (grid * 0 + 1000.0 + 50 * grid.lat).where(grid.lat < -40).rename("lake")  # NaN: REGION
    xr.merge([orog, relief, lake]).to_netcdf(root / "orog.nc")
    sets = (
        f"data.static.path={root / 'orog.nc'}",
        "data.static.variables=[orog]",
        "data.position_wavelengths=[90, 45]",
    )
    return path, sets


def test_position_channels_at_each_wavelength_depend_on_the_coordinates_alone():
    lat, lon = np.array([-30.0, 0.0, 15.0]), np.array([10.0, 200.0])
    got = position_channels(lat, lon, wavelengths=[90, 7.5])
    assert list(got)[:4] == ["sin_lat", "cos_lat", "sin_lon", "cos_lon"]
    assert len(got) == 12 and "cos_lon_7.5" in got
    np.testing.assert_allclose(got["sin_lat_90"][:, 0], np.sin(2 * np.pi * lat / 90))
    np.testing.assert_allclose(got["cos_lon_7.5"][0], np.cos(2 * np.pi * lon / 7.5))
    crop = position_channels(lat[1:], lon[1:], wavelengths=[90, 7.5])
    for name, values in crop.items():  # a crop reads what its cells read on the whole grid
        np.testing.assert_array_equal(values, got[name][1:, 1:])


def test_a_region_reads_user_fields_with_the_whole_grids_statistics(archive):
    path, sets = archive
    cfg = tiny_config(path, *sets)
    whole = build_view(cfg.data, cfg.task)
    region = build_view(tiny_config(path, *sets, *REGION).data, cfg.task)
    names, values = static_channels(whole)
    cells = {
        "lat": np.isin(whole.fields.lat, region.fields.lat),
        "lon": np.isin(whole.fields.lon, region.fields.lon),
    }
    expected = values[:, cells["lat"]][:, :, cells["lon"]]
    k = names.index("static_orog")
    refitted = static_channels(region)[1]  # what a region fitted on its own cells reads
    assert not np.allclose(refitted[k], expected[k], atol=0.1)
    record = static_record(whole)
    assert record["position_wavelengths"] == [90.0, 45.0] and set(record["static_scale"]) == {
        "orog"
    }
    got_names, got = static_channels(with_static_record(region, record))
    assert got_names == names and names.index("sin_lon_45") < names.index("valid_mask")
    np.testing.assert_allclose(got[k], expected[k], rtol=1e-6)
    np.testing.assert_allclose(got[:12], expected[:12], atol=1e-6)  # the 12 position channels


@pytest.fixture(scope="module")
def pretrained(archive, tmp_path_factory):
    """A model trained one epoch with the user field and the position wavelengths."""
    path, sets = archive
    cfg = tiny_config(path, *sets, "trainer.max_epochs=1")
    return pretrain(cfg, out=tmp_path_factory.mktemp("pre") / "pre")


def test_models_store_and_fine_tunes_inherit_how_they_read_static_inputs(
    archive, pretrained, tmp_path
):
    path, sets = archive
    run = pretrained
    model = load_model(run)
    assert model.meta.data["position_wavelengths"] == [90.0, 45.0]
    orog = xr.open_dataset(path.parent / "orog.nc").orog  # fitted on the trained grid's cells
    mean, std = model.meta.data["static_scale"]["orog"]
    assert (mean, std) == pytest.approx((float(orog.mean()), float(orog.std())))
    # a region read without any position setting gets the model's encodings, and its
    # static inputs are the stored ones on its cells
    plain = tiny_config(path, *sets[:2], *REGION)
    region = model_view(model, build_view(plain.data, plain.task))
    static, margins = margined_static(model, region)
    assert margins is not None
    top, bottom, left, right = margins
    inner = static[:, top : static.shape[1] - bottom, left : static.shape[2] - right].numpy()
    stored = model.static.numpy()
    rows = np.flatnonzero(np.isin(model.meta.data["grid"]["lat"], region.fields.lat))
    cols = np.flatnonzero(np.isin(model.meta.data["grid"]["lon"], region.fields.lon))
    np.testing.assert_allclose(inner, stored[:, rows][:, :, cols], atol=1e-5)
    # a fine-tune reads them as its parent did, whatever its own region
    tuned = load_model(
        finetune(
            tiny_config(path, *sets[:2], *REGION, "trainer.max_epochs=1"),
            run,
            out=tmp_path / "ft",
            quiet=True,
        )
    )
    for key in ("position_wavelengths", "static_scale", "static"):
        assert tuned.meta.data[key] == model.meta.data[key]
    other = tiny_config(path, *sets[:2], "data.position_wavelengths=[30]")
    with pytest.raises(ClimatuneError, match="the pre-trained model reads \\[90.0, 45.0\\]"):
        finetune(other, run, out=tmp_path / "ft2", quiet=True)
    assert not (tmp_path / "ft2").exists()


@pytest.mark.parametrize("bad", ["[0]", "[-10]", "[20, 20]"])
def test_position_wavelengths_are_checked(bad):
    with pytest.raises(ClimatuneError, match="position_wavelengths"):
        load_config(None, [f"data.position_wavelengths={bad}"])


def test_position_wavelengths_read_a_longitude_alike_whichever_turn_it_is_written_in():
    # 50° does not divide 360°: a crop across 0° writes 315° as -45°, and read them alike
    lat = np.array([10.0])
    west = position_channels(lat, np.array([-45.0, -22.5, 0.0]), wavelengths=[50, 40])
    east = position_channels(lat, np.array([315.0, 337.5, 360.0]), wavelengths=[50, 40])
    for name in west:
        np.testing.assert_allclose(west[name], east[name], atol=1e-12, err_msg=name)
    assert abs(west["sin_lon_50"][0, 0] - np.sin(2 * np.pi * 315 / 50)) < 1e-12


@pytest.mark.parametrize(
    "fields, message",
    [
        ("[relief]", r"data.static gives \['relief'\], but the model was trained with \['orog'\]"),
        ("[orog, relief]", r"trained with \['orog'\]: give those"),
    ],
)
def test_a_model_refuses_other_user_static_fields_than_its_own(
    archive, pretrained, fields, message
):
    # another field in the model's place was read with its weights, silently, on a crop
    path, sets = archive
    model = load_model(pretrained)
    for where in ((), REGION):
        cfg = tiny_config(path, sets[0], f"data.static.variables={fields}", *where)
        with pytest.raises(ClimatuneError, match=message):
            margined_static(model, model_view(model, build_view(cfg.data, cfg.task)))


def test_evaluate_trains_its_scratch_network_on_the_configs_static_inputs(
    archive, pretrained, tmp_path
):
    # as curve and leads do, and as its config.yaml says: not the fine-tuned model's
    path, sets = archive
    cfg = tiny_config(path, *sets[:2], *REGION, "trainer.max_epochs=1")
    tuned = finetune(cfg, pretrained, out=tmp_path / "ft", quiet=True)
    out = evaluate_command(
        tuned,
        config=str(tuned / "config.yaml"),
        overrides=[],
        baselines="scratch",
        out=tmp_path / "ev",
    )
    scratch, parent = load_model(out / "scratch"), load_model(pretrained)
    assert "position_wavelengths" not in scratch.meta.data
    assert scratch.meta.data["static"][4:] == ["valid_mask", "static_orog"]
    region = build_view(cfg.data, cfg.task)
    assert scratch.meta.data["static_scale"] == static_record(region)["static_scale"]
    assert scratch.meta.data["static_scale"] != parent.meta.data["static_scale"]


def test_tune_refuses_other_position_wavelengths_than_its_pre_trained_models_up_front(
    archive, pretrained, tmp_path
):
    # its trials' fine-tunes would each refuse them, after the study was written
    path, sets = archive
    space = tmp_path / "space.yaml"
    space.write_text("optim.lr: {type: float, low: 1.0e-4, high: 1.0e-3}\n")
    cfg = tiny_config(path, *sets[:2], "data.position_wavelengths=[30]")
    with pytest.raises(ClimatuneError, match="the pre-trained model reads \\[90.0, 45.0\\]"):
        tune_command(cfg, source=pretrained, space=space, trials=1, folds=2, out=tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_a_field_without_a_value_where_a_model_trained_is_scaled_where_it_has_some(archive):
    # a region where the field is all NaN has no scale for it: stored as (0, 1), a grid
    # where it has values read them unscaled (-2750), in a fine-tune too
    path, sets = archive
    lake = (sets[0], "data.static.variables=[orog, lake]")
    cfg = tiny_config(path, *lake, *REGION)
    record = static_record(build_view(cfg.data, cfg.task))
    assert set(record["static_scale"]) == {"orog"}
    whole = build_view(tiny_config(path, *lake).data, cfg.task)
    names, values = static_channels(with_static_record(whole, record))
    read = values[names.index("static_lake")]
    np.testing.assert_allclose(read, static_channels(whole)[1][names.index("static_lake")])
    assert np.abs(read).max() <= 1.0 + 1e-6
