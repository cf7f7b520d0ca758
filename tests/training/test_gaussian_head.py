"""The Gaussian head's proper score: the closed-form CRPS, and a calibrated spread when the
noise is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from scipy import integrate
from scipy.stats import norm
from scores.probability import crps_for_ensemble
from torch.utils.data import DataLoader

from climatune.data.samples import TaskSamples, fit_normalizer, normalization_mode, static_channels
from climatune.data.view import build_view
from climatune.evaluation.probabilistic import gaussian_crps as field_crps
from climatune.evaluation.probabilistic import gaussian_rows
from climatune.models import build_net
from climatune.testing import tiny_archive, tiny_config
from climatune.training.losses import gaussian_crps, weighted_gaussian_crps
from climatune.training.scale import initialise_gaussian_head
from climatune.training.workflow import build_task, new_net
from climatune.workflows.runs import training_setup

CASES = [(0.0, 1.0, 0.0), (1.5, 0.4, 0.3), (-2.0, 3.0, 4.0), (0.2, 0.05, 0.21)]


@pytest.mark.parametrize(("mu", "sigma", "y"), CASES)
def test_closed_form_crps_is_the_integral_of_the_squared_cdf_gap(mu, sigma, y):
    def gap(x: float) -> float:
        return (norm.cdf(x, mu, sigma) - (x >= y)) ** 2

    lo, hi = min(mu, y) - 12 * sigma, max(mu, y) + 12 * sigma
    expected = (
        integrate.quad(gap, lo, y, epsabs=1e-12)[0] + integrate.quad(gap, y, hi, epsabs=1e-12)[0]
    )
    got = gaussian_crps(torch.tensor(mu), torch.tensor(sigma), torch.tensor(y))
    assert float(got) == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_the_evaluation_crps_matches_the_scores_package_and_weights_like_the_loss():
    rng = np.random.default_rng(0)
    mu, sigma, y = rng.normal(size=(3, 4)), rng.uniform(0.3, 1.5, (3, 4)), rng.normal(size=(3, 4))
    y[0, 1] = np.nan  # a masked cell
    weight = np.array([1.0, 0.5, 0.0, 2.0])  # per lon: 0 is outside the region
    dims = ("time", "lon")
    obs = xr.DataArray(y, dims=dims)
    got = field_crps(
        xr.DataArray(mu, dims=dims),
        xr.DataArray(sigma, dims=dims),
        obs,
        xr.DataArray(weight, dims="lon"),
    )

    # scores' CRPS of the Gaussian as 2000 equally spaced quantile members (its ECDF)
    z = norm.ppf((np.arange(2000) + 0.5) / 2000)
    members = xr.DataArray(mu[..., None] + sigma[..., None] * z, dims=(*dims, "member"))
    w = xr.DataArray(np.where(np.isfinite(y), weight[None, :], 0.0), dims=dims)
    expected = float(
        crps_for_ensemble(members, obs.fillna(0.0), "member", method="ecdf", weights=w)
    )
    assert got == pytest.approx(expected, rel=1e-4)

    loss = weighted_gaussian_crps(
        torch.tensor(mu)[None, None],
        torch.tensor(sigma)[None, None],
        torch.tensor(y)[None, None],
        torch.tensor(weight)[None, :].expand(3, 4),
    )
    assert float(loss) == pytest.approx(got, rel=1e-5)


#: The known noise: its standard deviation in each cell of an 8 x 8 grid, 0.1 to 1.0.
SIGMA = torch.linspace(0.1, 1.0, 64).reshape(1, 8, 8)


def _batch(rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs x ~ N(0, 1); target x + SIGMA * noise: heteroscedastic, known cell by cell
    (the network reads SIGMA's pattern as a static field, as it reads orography)."""
    x = torch.from_numpy(rng.normal(size=(n, 1, 1, 8, 8)).astype("float32"))
    noise = torch.from_numpy(rng.normal(size=(n, 1, 8, 8)).astype("float32"))
    return x, x[:, :, 0] + SIGMA * noise


def test_a_gaussian_head_learns_known_heteroscedastic_noise():
    """Spread-skill near 1 and the right spread cell by cell; a deterministic prediction
    (zero spread) has none."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = build_net("unet", ["x"], n_static=1, n_out=1, width=4, depth=1, distribution="gaussian")
    net.set_residual([0])
    opt = torch.optim.Adam(net.parameters(), lr=2e-2)
    for _ in range(80):
        x, y = _batch(rng, 16)
        mean, scale = net.forward_dist(x, SIGMA.expand(16, 1, 8, 8))
        loss = weighted_gaussian_crps(mean, scale, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = _batch(rng, 64)
    with torch.no_grad():
        mean, scale = net.eval().forward_dist(x, SIGMA.expand(64, 1, 8, 8))
    dims = ("member", "time", "lat", "lon")

    def rows(spread: np.ndarray) -> dict[str, dict]:
        fc = [xr.Dataset({"v": (dims, np.asarray(a).reshape(1, 64, 8, 8))}) for a in (mean, spread)]
        truth = xr.Dataset({"v": (dims[1:], y.numpy()[:, 0])})
        got = gaussian_rows(*fc, truth, None, model="m", task="t", split="test")
        return {r["metric"]: r for r in got}

    gaussian, zero = rows(scale.numpy()), rows(np.full((64, 8, 8), 1e-6))
    # measured (80 steps): spread-skill 1.06, corr(predicted, true sigma) 0.995, PIT alpha 0.014
    assert 0.85 < gaussian["spread_skill"]["value"] < 1.15
    assert gaussian["crps"]["estimator"] == "closed-form Gaussian"
    assert np.corrcoef(scale.numpy().ravel(), SIGMA.expand(64, 1, 8, 8).numpy().ravel())[0, 1] > 0.9
    assert gaussian["pit_alpha"]["value"] < 0.04
    ranks = [gaussian[f"rank_hist_{k}"]["value"] for k in range(1, 22)]
    assert max(ranks) < 3 / 21  # about flat (1/21 each)
    assert zero["spread_skill"]["value"] < 0.01
    assert zero["crps"]["value"] > gaussian["crps"]["value"] * 1.2  # CRPS rewards the spread
    mae = float(np.abs(mean.numpy()[:, 0] - y.numpy()[:, 0]).mean())
    assert zero["crps"]["value"] == pytest.approx(mae, rel=1e-3)  # CRPS of no spread = MAE


def test_a_fresh_gaussian_head_starts_at_its_residual_base_and_that_base_error(tmp_path):
    cfg = tiny_config(tiny_archive(tmp_path / "tiny.nc"), "model.head_distribution=gaussian")
    view = build_view(cfg.data, cfg.task)
    normalizer = fit_normalizer(view, normalization_mode(view, cfg.data.normalization))
    names, _ = static_channels(view)
    task = build_task(training_setup(cfg), view, new_net(cfg.model, view, len(names), 0))
    assert initialise_gaussian_head(task, view, normalizer)
    samples = TaskSamples(view, "train", normalizer, mask_ratio=0.0)
    batch = next(iter(DataLoader(samples, batch_size=len(samples))))
    with torch.no_grad():
        mean, scale = task.net.forward_dist(
            batch["fields"], task.static.expand(len(samples), -1, -1, -1)
        )
    base = batch["fields"][:, :, -1]  # forecast residual: each target's own input at t
    torch.testing.assert_close(mean, torch.where(torch.isfinite(base), base, mean))
    err = (mean - batch["target"]).double()
    w = torch.isfinite(err) * task.weight.double()
    rms = torch.sqrt((w * torch.nan_to_num(err) ** 2).sum((0, 2, 3)) / w.sum((0, 2, 3)))
    # one scale per output, the base's weighted RMS error (measured on 64 of the samples)
    assert scale.amax((0, 2, 3)).sub(scale.amin((0, 2, 3))).abs().max() < 1e-6
    torch.testing.assert_close(scale[0, :, 0, 0].double(), rms, rtol=0.15, atol=0)
    task.net.load_state_dict(task.net.state_dict())  # trained weights: left alone
    assert not initialise_gaussian_head(task, view, normalizer)
