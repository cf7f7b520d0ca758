"""An AR6 region is scored inside its polygon: cells of its box outside it do not count."""

from __future__ import annotations

import numpy as np
import pytest

from climatune.config import load_config
from climatune.data import build_view, open_dataset
from climatune.evaluation import evaluate_view

SETS = [
    "data.path=sample://E1_north_america",
    "data.region={name: Western North America, halo: 5}",
    "data.split={train: [2000, 2049], val: [2051, 2068], test: [2070, 2099]}",
    "task.kind=forecast",
]


def _rmse(ds):
    cfg = load_config(None, SETS)
    view = build_view(cfg.data, cfg.task, ds)
    rows, _ = evaluate_view(view, {}, ["climatology", "persistence"])
    return view, {r["model"]: r["value"] for r in rows if r["metric"] == "rmse"}


def test_values_outside_the_polygon_but_inside_its_box_are_not_scored():
    ds = open_dataset("sample://E1_north_america").load()
    view, base = _rmse(ds)
    polygon = view.region_mask
    box = load_config(None, SETS).data.region.shape().box.mask(view.fields)
    corner = (box & ~polygon).reindex_like(ds.air_temperature, fill_value=False)
    inside = polygon.reindex_like(ds.air_temperature, fill_value=False)
    assert int(corner.sum()) > 10 and int(inside.sum()) > 100
    # +50 K every other year from 2060: the test years and the steps persistence reads
    year = ds.time.dt.year
    jump = (np.float32(50) * (year % 2) * (year >= 2060)).astype(np.float32)
    tas = ds.air_temperature
    _, outside_changed = _rmse(ds.assign(air_temperature=tas + jump * corner))
    assert outside_changed == pytest.approx(base, rel=1e-12)
    _, inside_changed = _rmse(ds.assign(air_temperature=tas + jump * inside))
    assert all(inside_changed[k] > base[k] + 1 for k in base)
    assert np.isfinite(list(base.values())).all()
