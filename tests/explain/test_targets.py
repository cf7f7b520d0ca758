"""Parsing --target and reducing a model's output to one number per sample."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from climatune.data.view import build_view
from climatune.errors import ClimatuneError
from climatune.explain.targets import TargetFunction, parse_target
from climatune.inference import load_model, static_for

UNITS = {"tas": "K", "sst": "K"}


@pytest.fixture(scope="module")
def view(small_store: Path, make_config):
    cfg = make_config(small_store, "data.variables=[tas, sst]")
    return build_view(cfg.data, cfg.task)


def test_default_is_the_first_output_over_the_scored_region(view) -> None:
    t = parse_target(None, view, ["tas", "sst"], UNITS)
    assert (t.variable, t.channel, t.label, t.units) == ("tas", 0, "tas", "K")
    assert t.weights.shape == view.region_mask.shape and np.isclose(t.weights.sum(), 1.0)
    lat = view.fields.lat.values
    assert t.weights[np.argmin(np.abs(lat)), 0] > t.weights[-1, 0]  # cos-latitude weights


def test_region_target_weights_only_its_valid_cells(view) -> None:
    t = parse_target("sst@lat=-20:20,lon=150:270", view, ["tas", "sst"], UNITS)
    assert t.label == "sst@lat=-20:20,lon=150:270" and t.channel == 1
    inside = t.mask.values
    assert np.isclose(t.weights.sum(), 1.0) and (t.weights[~inside] == 0).all()
    land = view.fields["sst"].isel(time=0).isnull().values
    assert not (inside & land).any()


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("pr", "not an output of the model; its outputs are: tas, sst"),
        ("tass", "did you mean 'tas'"),
        ("tas@lat=30:50", "must look like lat=30:50,lon=235:260"),
        ("tas@lat=50:30,lon=0:10", "reversed"),
        ("sst@lat=40:60,lon=240:260", "no valid cell"),
    ],
)
def test_bad_targets_are_user_errors(view, spec: str, match: str) -> None:
    with pytest.raises(ClimatuneError, match=match):
        parse_target(spec, view, ["tas", "sst"], UNITS)


def test_index_targets_have_no_region(index_model: Path) -> None:
    model = load_model(index_model)
    view = build_view(model.meta.data_config, model.meta.task_config)
    t = parse_target(None, view, model.meta.outputs, model.meta.units("outputs"))
    assert t.label == "nino34" and t.weights is None
    with pytest.raises(ClimatuneError, match="index model predicts one number"):
        parse_target("nino34@lat=-5:5,lon=190:240", view, model.meta.outputs, {})


def test_target_function_is_the_weighted_mean_in_physical_units(forecast_model: Path) -> None:
    model = load_model(forecast_model)
    view = build_view(model.meta.data_config, model.meta.task_config)
    t = parse_target(
        "sst@lat=-20:20,lon=150:270", view, model.meta.outputs, model.meta.units("outputs")
    )
    static = static_for(model, view)
    func = TargetFunction(model, static, t)
    x = torch.randn(2, 3, 2, *view.region_mask.shape)
    mean, std = model.normalizer.scale("sst")
    with torch.no_grad():
        field = model.forward(x, static)[:, 1].numpy() * std + mean
        got = func(x).numpy()
    np.testing.assert_allclose(got, (field * t.weights).sum(axis=(1, 2)), rtol=1e-5)


def test_stored_static_inputs_only_on_the_same_cells(forecast_model: Path) -> None:
    """Same grid shape and latitudes but other longitudes: the static inputs are made anew."""
    model = load_model(forecast_model)
    view = build_view(model.meta.data_config, model.meta.task_config)
    assert torch.equal(static_for(model, view), model.static)
    wrapped = view.fields.assign_coords(lon=view.fields.lon - 360.0)  # the same cells
    assert torch.equal(static_for(model, dataclasses.replace(view, fields=wrapped)), model.static)
    shifted = view.fields.assign_coords(lon=(view.fields.lon + 30.0) % 360.0)
    fresh = static_for(model, dataclasses.replace(view, fields=shifted))
    assert not torch.equal(fresh, model.static)
    sin_lon = model.meta.data["static"].index("sin_lon")
    np.testing.assert_allclose(
        fresh[sin_lon, 0].numpy(), np.sin(np.deg2rad(shifted.lon.values)), atol=1e-6
    )
