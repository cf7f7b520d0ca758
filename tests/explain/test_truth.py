"""Truth tests on a network whose weights encode a known relation exactly.

The synthetic archive's Niño 3.4 box (``nino34_region`` in the store's attributes) holds the
ENSO SST signal. The ``persistence_model`` fixture is a real ClimateNet whose head is zero,
so with its residual it predicts ``sst(t+1) = sst(t)``: the target "mean SST over the
Niño box" depends on SST inside the box and on nothing else, with a known coefficient per
cell. Every correct attribution must then put its mass inside the box, on the ocean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from climatune.data.io import open_dataset
from climatune.data.regions import parse_region
from climatune.data.view import build_view
from climatune.evaluation.climatology import climatology, climatology_at
from climatune.explain.run import Explanation, explain
from climatune.inference import load_model


@pytest.fixture(scope="module")
def nino_box(store: Path) -> str:
    return open_dataset(store).attrs["nino34_region"]


@pytest.fixture(scope="module")
def setup(persistence_model: Path):
    model = load_model(persistence_model)
    return model, build_view(model.meta.data_config, model.meta.task_config)


@pytest.fixture(scope="module")
def ig(setup, nino_box: str) -> Explanation:
    model, view = setup
    return explain(model, view, method="ig", target=f"sst@{nino_box}", samples=6)


def share_inside(attr: xr.DataArray, box: str) -> float:
    """Share of the total |attribution| on cells inside ``box``."""
    a = np.abs(attr)
    return float(a.where(parse_region(box).mask(a)).sum() / a.sum())


def test_ig_mass_lies_in_the_nino_box(ig: Explanation, nino_box: str) -> None:
    # The target is sum_ij w_ij sst_ij over the box, so every cell outside it has a zero
    # coefficient: the exact share inside is 1; 0.99 only allows for float32 round-off.
    assert share_inside(ig.attribution, nino_box) >= 0.99


def test_ig_sums_to_the_observed_anomaly(ig: Explanation, store: Path, nino_box: str) -> None:
    # Completeness against an independent xarray computation: with the climatology
    # baseline, the attributions of each sample add up to the cos-weighted mean SST
    # anomaly over the box at the sample's input step (in K).
    sst = open_dataset(store)["sst"].load()
    clim = climatology(sst.sel(time=sst.time.dt.year <= 1954))
    times = ig.attribution["sample"].values
    anomaly = sst.sel(time=times) - climatology_at(clim, sst.time.sel(time=times))
    box = parse_region(nino_box).mask(sst) & sst.isel(time=0).notnull()
    w = np.cos(np.deg2rad(sst.lat)).where(box, 0.0)
    expected = (anomaly * w).sum(("lat", "lon")) / w.sum()
    got = ig.attribution.sum(("variable", "lat", "lon"))
    np.testing.assert_allclose(got.values, expected.values, atol=2e-3)
    assert np.abs(expected.values).max() > 0.1  # the check is not trivially 0 = 0


def test_interactions_rank_the_ocean_first(ig: Explanation) -> None:
    table = ig.interactions
    assert table.ranking(ig.target.label)[0] == "ocean"
    assert table.component_shares(ig.target.label)["ocean"] >= 0.99
    assert table.components == {"tas": "atmosphere", "sst": "ocean", "siconc": "ice"}


def test_ig_is_faithful(ig: Explanation) -> None:
    # Deleting the box cells first removes the whole signal at once; random deletion of
    # 5-50 % of the ~2,700 valid cells rarely hits the 14 box cells.
    assert ig.faithfulness["ratio"] > 2.0
    assert ig.faithfulness["attribution"][0] == 0.0


@pytest.mark.parametrize("method", ["saliency", "shap"])
def test_gradient_methods_stay_in_the_box(setup, nino_box: str, method: str) -> None:
    model, view = setup
    expl = explain(model, view, method=method, target=f"sst@{nino_box}", samples=2)
    assert share_inside(expl.attribution, nino_box) >= 0.99
    assert expl.faithfulness["ratio"] > 1.0


def test_occlusion_stays_in_the_windows_over_the_box(setup, nino_box: str) -> None:
    # Occlusion spreads a window's effect over the window, so mass may leave the box but
    # only into windows that overlap it: every cell more than a window away gets nothing.
    model, view = setup
    expl = explain(model, view, method="occlusion", target=f"sst@{nino_box}", samples=2)
    wh, ww = expl.settings["window"]
    region = parse_region(nino_box)
    dlat, dlon = 180.0 / view.fields.lat.size, 360.0 / view.fields.lon.size
    near = region.mask(expl.attribution, halo=max(wh * dlat, ww * dlon))
    assert float(np.abs(expl.attribution).where(~near).sum()) == 0.0
    assert expl.interactions.ranking(expl.target.label)[0] == "ocean"
    assert expl.faithfulness["ratio"] > 1.0
