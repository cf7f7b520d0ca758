"""A Gaussian head (``model.head_distribution: gaussian``) through the artifact, ``predict``,
``evaluate`` and fine-tuning."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr
from scipy.stats import norm

from climatune import load_model
from climatune.cli import main
from climatune.data.io import open_dataset
from climatune.data.view import build_view
from climatune.evaluation.evaluate import evaluate_view
from climatune.evaluation.probabilistic import gaussian_crps
from climatune.inference import predict_distribution
from climatune.inference.gaussian import gaussian_quantiles
from climatune.testing import tiny_archive, tiny_config
from climatune.workflows.finetuning import finetune
from climatune.workflows.pretraining import pretrain

FAST = ("trainer.max_epochs=1", "trainer.limit_train_batches=2")
GAUSSIAN = "model.head_distribution=gaussian"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny archive, a deterministic and a Gaussian forecast, and a 2-member Gaussian
    ensemble fine-tuned (linear probe) from the deterministic one."""
    root = tmp_path_factory.mktemp("gaussian")
    archive = tiny_archive(root / "tiny.nc")
    det = pretrain(tiny_config(archive, *FAST), out=root / "det")
    gauss = pretrain(tiny_config(archive, *FAST, GAUSSIAN), out=root / "gauss")
    cfg = tiny_config(
        archive, *FAST, GAUSSIAN, "ensemble.members=2", "finetune.strategy=linear_probe"
    )
    mixture = finetune(cfg, det, out=root / "mixture", quiet=True)
    return archive, det, gauss, mixture


def test_the_artifact_holds_the_gaussian_head_and_a_deterministic_one_is_unchanged(runs):
    archive, det, gauss, mixture = runs
    spec = json.loads((gauss / "model" / "climatune.json").read_text())["architecture"]
    assert spec["spec_version"] == 3 and spec["head_kwargs"] == {"distribution": "gaussian"}
    plain = json.loads((det / "model" / "climatune.json").read_text())["architecture"]
    assert plain["spec_version"] == 2 and plain["head_kwargs"] == {}  # as before the option
    model = load_model(gauss)
    assert model.distribution == "gaussian" and load_model(det).distribution == "none"
    assert not model.net.head.fresh  # loaded weights: training would not re-initialise them
    assert model.net.head.proj.out_channels == 4  # tas, sst: a mean and a scale each
    ens = load_model(mixture)
    assert ens.members == 2 and ens.distribution == "gaussian"
    assert ens.meta.data["parent"]  # fine-tuned: a fresh Gaussian head on a deterministic parent

    # round trip: the loaded network predicts what the trained one did
    x = torch.randn(3, 2, 1, 8, 16)
    mean, scale = model.forward_members_dist(x)
    again_mean, again_scale = load_model(gauss).forward_members_dist(x)
    assert scale is not None and again_scale is not None and bool((scale > 0).all())
    assert torch.equal(mean, again_mean) and torch.equal(scale, again_scale)
    assert torch.equal(model.forward(x), mean[0])  # deterministic uses see the mean


def test_predict_writes_the_mean_and_std_and_closed_form_quantiles(runs, tmp_path, caplog):
    archive, _, gauss, _ = runs
    model = load_model(gauss)
    mean, std = model.predict_distribution(open_dataset(archive))
    plain = tmp_path / "p.nc"
    assert main(["predict", str(gauss), "--input", str(archive), "--output", str(plain)]) == 0
    with xr.open_dataset(plain) as pred:
        assert "standard deviation" in pred.attrs["distribution"]
        assert pred.tas_std.attrs["units"] == pred.tas.attrs["units"] == "K"
        assert bool((pred.tas_std > 0).where(pred.tas_std.notnull(), True).all())
        np.testing.assert_allclose(pred.tas, mean.tas[0], rtol=1e-6)
        np.testing.assert_allclose(pred.tas_std, std.tas[0], rtol=1e-6)
    out = tmp_path / "q.nc"
    argv = ["predict", str(gauss), "--input", str(archive), "--output", str(out)]
    assert main([*argv, "--quantiles", "0.05,0.5,0.95"]) == 0
    with xr.open_dataset(out) as pred:
        assert "closed form" in pred.attrs["distribution"]
        for q in (0.05, 0.5, 0.95):
            expected = mean.tas[0] + std.tas[0] * norm.ppf(q)
            np.testing.assert_allclose(pred.tas_quantiles.sel(quantile=q), expected, rtol=1e-5)
    # --samples beside --quantiles: the same exact quantiles, not estimates from 5 draws
    both = tmp_path / "qs.nc"
    argv = ["predict", str(gauss), "--input", str(archive), "--output", str(both)]
    assert main([*argv, "--quantiles", "0.05,0.5,0.95", "--samples", "5"]) == 0
    assert "--samples 5 not drawn" in caplog.text
    with xr.open_dataset(out) as exact, xr.open_dataset(both) as pred:
        assert "closed form" in pred.attrs["distribution"] and "ensemble" not in pred.attrs
        np.testing.assert_array_equal(pred.tas_quantiles, exact.tas_quantiles)
    drawn = tmp_path / "s.nc"
    argv = ["predict", str(gauss), "--input", str(archive), "--output", str(drawn)]
    assert main([*argv, "--samples", "3"]) == 0
    with xr.open_dataset(drawn) as pred:
        assert pred.tas.sizes["member"] == 3
        assert "random draws from the predictive Gaussian" in pred.attrs["ensemble"]
        z = ((pred.tas - mean.tas[0]) / std.tas[0]).values
        assert 0.5 < float(np.nanstd(z)) < 1.5  # draws at the predicted scale


def test_mixture_quantiles_solve_the_mixture_cdf(runs):
    archive, _, _, mixture = runs
    mean, std = load_model(mixture).predict_distribution(open_dataset(archive))
    q = gaussian_quantiles(mean.tas, std.tas, [0.1, 0.9])
    for level in (0.1, 0.9):
        at = q.sel(quantile=level).values[None]
        cdf = norm.cdf((at - mean.tas.values) / std.tas.values).mean(0)
        assert np.isfinite(cdf).sum() > 100
        np.testing.assert_allclose(cdf[np.isfinite(cdf)], level, atol=1e-5)


def test_evaluate_scores_a_gaussian_head_from_its_distribution(runs):
    archive, _, gauss, _ = runs
    model = load_model(gauss)
    view = build_view(tiny_config(archive).data, tiny_config(archive).task)
    rows, preds = evaluate_view(view, {"pretrained": model}, ["climatology"])
    mean, std = predict_distribution(model, view, "test")
    xr.testing.assert_allclose(preds["pretrained"].tas, mean.tas.isel(member=0, drop=True))
    crps = {(r["model"], r["variable"]): r for r in rows if r["metric"] == "crps"}
    assert crps[("pretrained", "tas")]["estimator"] == "closed-form Gaussian"
    truth = view.truth("test").tas.where(preds["climatology"].tas.notnull())
    expected = gaussian_crps(mean.tas[0], std.tas[0], truth, view.weights())
    assert crps[("pretrained", "tas")]["value"] == pytest.approx(expected, rel=1e-6)
    assert ("climatological_ensemble", "tas") in crps and ("climatology_dressed", "tas") in crps
    ranks = [r for r in rows if r["model"] == "pretrained" and r["metric"].startswith("rank_hist_")]
    assert len(ranks) == 2 * (20 + 1)  # tas and sst, 20 quantile members each
    assert all("20 equally spaced quantile draws" in r["estimator"] for r in ranks)
