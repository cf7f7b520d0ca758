"""Truth tests on networks trained by the library on the synthetic archive.

The generator's coefficients (in the store's attributes) say what drives each target, and
the thresholds below are derived from them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from climatune.data.io import open_dataset
from climatune.data.regions import parse_region
from climatune.data.view import build_view
from climatune.explain.run import explain
from climatune.inference import load_model
from climatune.workflows.pretraining import pretrain


def share_inside(attr: xr.DataArray, box: str) -> float:
    """Share of the total |attribution| on cells inside ``box``."""
    a = np.abs(attr)
    return float(a.where(parse_region(box).mask(a)).sum() / a.sum())


def enso_lag1_autocorrelation(attrs: dict, steps_per_year: int = 12) -> float:
    """Lag-1 autocorrelation of the generator's AR(2) ENSO oscillator, phi1 / (1 - phi2)."""
    dt = 1.0 / steps_per_year
    r = np.exp(-dt / attrs["enso_damping_years"])
    phi1, phi2 = 2 * r * np.cos(2 * np.pi * dt / attrs["enso_period_years"]), -(r**2)
    return phi1 / (1 - phi2)


def test_trained_sst_forecast_reads_the_nino_box(store: Path, make_config, tmp_path: Path) -> None:
    # A forecast of SST one month ahead over the Niño 3.4 box, trained for 3 epochs: the
    # target is driven by SST in the box (ocean memory and ENSO persistence).
    cfg = make_config(
        store,
        "data.variables=[tas, sst, siconc]",
        "data.targets=[sst]",
        "trainer.max_epochs=3",
        "data.batch_size=8",
        "optim.lr=3e-3",
        "data.normalization=global",  # the thresholds were derived for raw values
    )
    model = load_model(pretrain(cfg, out=tmp_path / "run"))
    attrs = open_dataset(store).attrs
    box = attrs["nino34_region"]
    expl = explain(
        model,
        build_view(model.meta.data_config, model.meta.task_config),
        method="ig",
        target=f"sst@{box}",
        samples=8,
    )
    # The residual path carries the box's SST anomaly A; what the network learned is a
    # correction as large as the month-to-month change, about A * sqrt(2 (1 - rho1)) with
    # rho1 the ENSO lag-1 autocorrelation (0.991 from a 4-year period and 2-year damping).
    # Allowing the correction twice that much attribution mass, all of it outside the box:
    # share >= 1 / (1 + 2 sqrt(2 (1 - rho1))) = 0.78.
    rho1 = enso_lag1_autocorrelation(attrs)
    threshold = 1.0 / (1.0 + 2.0 * np.sqrt(2.0 * (1.0 - rho1)))
    assert 0.75 < threshold < 0.8
    assert share_inside(expl.attribution, box) > threshold
    assert expl.interactions.ranking(expl.target.label)[0] == "ocean"
    assert expl.faithfulness["ratio"] > 1.0


def enso_region_shares(ds: xr.Dataset, box: str) -> tuple[float, float]:
    """(uniform, matched) shares of attribution mass inside ``box``.

    ``uniform``: a model blind to location (mass spread evenly over the valid input cells of
    tas, sst and siconc). ``matched``: the optimal linear estimator of ENSO from SST, a
    matched filter whose attribution goes as the square of the generator's ENSO pattern.
    """
    a = ds.attrs
    dlon = (ds.lon - a["enso_pattern_lon"] + 180.0) % 360.0 - 180.0
    pattern = np.exp(
        -0.5 * ((ds.lat - a["enso_pattern_lat"]) / a["enso_pattern_sigma_lat_deg"]) ** 2
        - 0.5 * (dlon / a["enso_pattern_sigma_lon_deg"]) ** 2
    )
    ocean = ds["sst"].isel(time=0).notnull()
    inside = parse_region(box).mask(ds)
    p2 = (pattern**2).where(ocean, 0.0)
    matched = float(p2.where(inside, 0.0).sum() / p2.sum())
    uniform = float(inside.sum() + 2 * (inside & ocean).sum()) / float(ocean.size + 2 * ocean.sum())
    return uniform, matched


@pytest.mark.slow
def test_trained_nino34_index_reads_the_tropical_pacific(tmp_path: Path) -> None:
    from climatune.config import load_config
    from climatune.data.synthetic import write_synthetic

    # nino34 is the SST anomaly over the Niño 3.4 box: driven by ENSO alone, which lives
    # in the tropical Pacific SST. The index model learns it in about 20 epochs; 60 let
    # its attribution settle on the tropical Pacific (after 30 it is still spread wider).
    store = write_synthetic(tmp_path / "s.zarr", years=20, grid=(16, 32), seed=0)
    cfg = load_config(
        None,
        [
            f"data.path={store}",
            "data.variables=[sst, tas, siconc]",
            "task.kind=index",
            "task.lead=0",
            "task.index.variable=nino34",
            "data.normalization=global",  # the threshold was derived for raw values
            "model.width=8",
            "model.depth=2",
            "optim.lr=3e-3",
            "trainer.max_epochs=60",
            "trainer.patience=60",
            "trainer.progress_bar=false",
            "trainer.accelerator=cpu",
        ],
    )
    run = pretrain(cfg, out=tmp_path / "run")
    import pandas as pd

    val = pd.read_csv(run / "logs" / "metrics.csv")["val_loss"].min()
    assert val < 0.3, (
        f"the index model did not learn nino34 (best val MSE {val:.2f} of a unit variance)"
    )
    model = load_model(run)
    ds = open_dataset(store)
    region = ds.attrs["tropical_pacific_ocean_region"]
    expl = explain(
        model, build_view(model.meta.data_config, model.meta.task_config), method="ig", samples=16
    )
    # "Most" of the mass: halfway between a location-blind model (0.11 on this grid) and
    # the matched filter (0.98), i.e. about 0.55.
    uniform, matched = enso_region_shares(ds, region)
    threshold = (uniform + matched) / 2
    assert 0.5 < threshold < 0.6
    assert share_inside(expl.attribution, region) > threshold
    assert expl.interactions.ranking("nino34")[0] == "ocean"
    assert expl.faithfulness["ratio"] > 1.0
