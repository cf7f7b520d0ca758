"""Each attribution method on a linear function, whose exact attributions are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from climatune.errors import ClimatuneError
from climatune.explain.attribution import (
    METHODS,
    Settings,
    attribute,
    block_mask,
    check_method,
    tiling,
)

SHAPE = (3, 2, 1, 8, 16)  # samples, variables, steps, lat, lon


class Linear(nn.Module):
    """f(x) = sum(w * x) per sample: the exact attribution of cell c is w_c (x_c - b_c)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer(
            "w", torch.randn(SHAPE[1:], generator=torch.Generator().manual_seed(1))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1)


@pytest.fixture
def case() -> tuple[Linear, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return Linear(), torch.randn(SHAPE, generator=g), 0.1 * torch.randn(SHAPE, generator=g)


def test_ig_is_exact_on_a_linear_function(case) -> None:
    f, x, b = case
    settings = Settings(n_steps=8)
    attr = attribute("ig", f, x, b, settings=settings)
    np.testing.assert_allclose(attr, (f.w * (x - b)).numpy(), rtol=1e-4, atol=1e-5)
    assert settings.used["completeness_error"] < 1e-4


def test_saliency_is_the_gradient(case) -> None:
    f, x, b = case
    attr = attribute("saliency", f, x, b)
    np.testing.assert_allclose(attr, f.w.expand_as(x).numpy(), rtol=1e-6)


@pytest.mark.parametrize("method", ["occlusion", "shap"])
def test_block_and_sampling_methods_are_complete(case, method: str) -> None:
    # Occlusion with windows that tile the grid, and expected gradients against a
    # background equal to the baseline, both sum exactly to f(x) - f(b).
    f, x, b = case
    background = b[:1].repeat(4, 1, 1, 1, 1)
    base = b[:1].expand_as(x)
    attr = attribute(method, f, x, base, background=background, settings=Settings(shap_samples=16))
    np.testing.assert_allclose(
        attr.sum(axis=(1, 2, 3, 4)), (f(x) - f(base)).numpy(), rtol=1e-4, atol=1e-4
    )


def test_lime_recovers_the_superpixel_effects(case) -> None:
    f, x, b = case
    attr = attribute("lime", f, x[:1], b[:1], settings=Settings(lime_samples=400))
    mask = block_mask(x.shape, (4, 8))[0].numpy()
    effect = (f.w * (x[:1] - b[:1]))[0].numpy()
    truth = np.bincount(mask.ravel(), weights=effect.ravel())
    got = np.bincount(mask.ravel(), weights=attr[0].ravel())
    assert np.corrcoef(truth, got)[0, 1] > 0.95


def test_invalid_cells_come_back_nan(case) -> None:
    f, x, b = case
    valid = np.ones(SHAPE[1:2] + SHAPE[3:], bool)
    valid[1, :4] = False  # e.g. land in an SST field
    attr = attribute("saliency", f, x, b, valid=valid)
    assert np.isnan(attr[:, 1, :, :4]).all()
    assert np.isfinite(attr[:, 0]).all() and np.isfinite(attr[:, 1, :, 4:]).all()


def test_model_weights_keep_requires_grad() -> None:
    net = nn.Linear(4, 1)
    f = nn.Sequential(nn.Flatten(), net, nn.Flatten(0))
    attribute("saliency", f, torch.randn(2, 1, 1, 2, 2), torch.zeros(2, 1, 1, 2, 2))
    assert all(p.requires_grad for p in net.parameters())


@pytest.mark.parametrize("n", [1, 2, 7, 10, 16, 24, 64, 73, 97, 128, 145])
@pytest.mark.parametrize("count", [1, 4, 8])
def test_tiling_covers_every_cell(n: int, count: int) -> None:
    window, stride = tiling(n, count)
    assert 1 <= window <= n and (window + 1) // 2 <= stride <= window
    assert (n - window) % stride == 0  # the last window ends on the last cell


def test_block_mask_gives_one_feature_per_block() -> None:
    mask = block_mask(torch.Size((1, 2, 3, 10, 20)), (4, 8))
    assert mask.shape == (1, 2, 3, 10, 20)
    ids = mask.unique()
    assert ids.tolist() == list(range(2 * 3 * 4 * 7))  # ceil(10/3)=4 rows, ceil(20/3)=7 cols
    assert set(mask[0, 1, 2].unique().tolist()).isdisjoint(mask[0, 0, 0].unique().tolist())


def test_unknown_method_is_a_user_error() -> None:
    assert check_method("ig") == "ig" and "shap" in METHODS
    with pytest.raises(ClimatuneError, match="did you mean 'lime'"):
        check_method("lim")
