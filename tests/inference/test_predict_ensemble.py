"""``climatune predict`` of an ensemble: every member, or the mean and quantiles; MC dropout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from climatune import load_model
from climatune.cli import main
from climatune.data.io import open_dataset
from climatune.testing import tiny_archive, tiny_config
from climatune.workflows.pretraining import pretrain

FAST = ("trainer.max_epochs=1", "trainer.limit_train_batches=2", "model.dropout=0.1")
V1 = Path(__file__).resolve().parents[1] / "fixtures" / "artifact_v1" / "model"


@pytest.fixture(scope="module")
def ens(tmp_path_factory):
    """A 3-member ensemble with dropout, and its archive."""
    root = tmp_path_factory.mktemp("predict-ensemble")
    archive = tiny_archive(root / "tiny.nc")
    return archive, pretrain(tiny_config(archive, *FAST, "ensemble.members=3"), out=root / "run")


def _predict(*argv: str) -> int:
    return main(["predict", *argv])


def test_every_member_is_a_cf_realization(ens, tmp_path):
    archive, run = ens
    out = tmp_path / "p.nc"
    assert _predict(str(run), "--input", str(archive), "--output", str(out)) == 0
    each = load_model(run).predict(open_dataset(archive), members=True)
    with xr.open_dataset(out) as pred:
        assert pred.tas.dims == ("member", "time", "lat", "lon")
        assert pred.member.attrs["standard_name"] == "realization"
        assert list(pred.member.values) == [0, 1, 2]
        assert "3 ensemble members" in pred.attrs["ensemble"]
        assert pred.attrs["Conventions"] == "CF-1.8"
        np.testing.assert_allclose(pred.tas, each.tas, rtol=1e-6)


def test_quantiles_give_the_mean_and_the_chosen_quantiles(ens, tmp_path):
    archive, run = ens
    out = tmp_path / "q.nc"
    argv = [str(run), "--input", str(archive), "--output", str(out)]
    assert _predict(*argv, "--quantiles", "0.95,0.05,0.5") == 0
    each = load_model(run).predict(open_dataset(archive), members=True).tas
    with xr.open_dataset(out) as pred:
        assert "member" not in pred.dims
        assert pred.tas.attrs["cell_methods"] == "member: mean"
        assert pred.tas_quantiles.dims == ("quantile", "time", "lat", "lon")
        assert list(pred["quantile"].values) == [0.05, 0.5, 0.95]
        assert pred["quantile"].attrs["units"] == "1"
        np.testing.assert_allclose(pred.tas, each.mean("member"), rtol=1e-6)
        np.testing.assert_allclose(pred.tas_quantiles.sel(quantile=0.5), each.median("member"))
        low, high = pred.tas_quantiles.sel(quantile=0.05), pred.tas_quantiles.sel(quantile=0.95)
        assert bool((low <= high).where(low.notnull(), True).all())
        assert float((high - low).mean()) > 0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--quantiles", "0.5,1.5"], "strictly between 0 and 1"),
        (["--quantiles", "0.5,0.5"], "twice"),
        (["--quantiles", "a,b"], "comma-separated numbers"),
        (["--samples", "-2"], "--samples must be a count"),
    ],
)
def test_bad_flags_are_one_line_and_write_nothing(ens, tmp_path, capsys, flags, message):
    archive, run = ens
    out = tmp_path / "bad.nc"
    assert _predict(str(run), "--input", str(archive), "--output", str(out), *flags) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("climatune: error:") and err.count("\n") == 0 and message in err
    assert not out.exists()


def test_a_single_network_without_dropout_refuses_samples_and_quantiles(ens, tmp_path, capsys):
    archive, _ = ens
    model = load_model(V1)
    assert model.members == 1
    data = archive
    for flags, message in (
        (["--samples", "4"], "needs a network with dropout"),
        (["--quantiles", "0.1,0.9"], "needs several predictions"),
    ):
        out = tmp_path / "x.nc"
        assert _predict(str(V1), "--input", str(data), "--output", str(out), *flags) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and message in err, err
        assert not out.exists()


def test_mc_dropout_draws_differ_and_repeat(ens, tmp_path):
    archive, run = ens
    member = load_model(run).member(0)
    ds = open_dataset(archive)
    draws = member.predict(ds, samples=4)
    assert draws.tas.dims == ("member", "time", "lat", "lon") and draws.sizes["member"] == 4
    spread = draws.tas.std("member")
    assert float(spread.mean()) > 1e-4  # dropout is on
    again = member.predict(ds, samples=4)
    np.testing.assert_array_equal(draws.tas, again.tas)  # seeded
    plain = member.predict(ds)  # dropout off again afterwards
    np.testing.assert_array_equal(plain.tas, member.predict(ds).tas)
    assert all(not m.training for m in member.net.modules())


def test_samples_of_an_ensemble_are_drawn_from_each_member(ens, tmp_path):
    archive, run = ens
    out = tmp_path / "s.nc"
    argv = [str(run), "--input", str(archive), "--output", str(out), "--samples", "2"]
    assert _predict(*argv) == 0
    with xr.open_dataset(out) as pred:
        assert pred.sizes["member"] == 6
        assert "2 MC-dropout draws from each of 3 ensemble members" in pred.attrs["ensemble"]
