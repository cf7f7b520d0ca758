from __future__ import annotations

import pytest
import torch

from climatune.errors import ClimatuneError
from climatune.models import build_net, create_head
from climatune.models.heads import SCALE_FLOOR
from climatune.models.settings import ModelConfig


def test_field_head_shape() -> None:
    assert create_head("field", 8, 3)(torch.randn(2, 8, 5, 7)).shape == (2, 3, 5, 7)


def test_scalar_head_pools_only_the_masked_cells() -> None:
    head = create_head("scalar", 8, 2, hidden=16)
    feats = torch.randn(2, 8, 5, 7)
    mask = torch.zeros(5, 7, dtype=torch.bool)
    mask[1:3, 2:5] = True
    out = head(feats, mask)
    assert out.shape == (2, 2)
    noisy = feats.clone()
    noisy[..., ~mask] = 1e6
    torch.testing.assert_close(head(noisy, mask), out)
    per_sample = mask.expand(2, 1, 5, 7)
    torch.testing.assert_close(head(feats, per_sample), out)
    assert not torch.allclose(head(feats), out)


def test_scalar_head_standardises_the_pooled_features_over_the_batch() -> None:
    head = create_head("scalar", 8, 1, hidden=16)
    assert head.hparams["norm"] == "batch"
    feats = torch.randn(4, 8, 5, 7)
    out = head(feats)
    # A value shared by every sample, and the scale of the features, are divided out.
    torch.testing.assert_close(head(3 * feats + 5), out, rtol=1e-3, atol=1e-3)
    assert head(feats[:1]).shape == (1, 1)  # a batch of one: the running statistics
    head.eval()  # running statistics: a sample's output does not depend on its batch
    torch.testing.assert_close(head(feats[:1]), head(feats)[:1])
    plain = create_head("scalar", 8, 1, hidden=16, norm="none")
    assert not torch.allclose(plain(feats + 5), plain(feats))
    with pytest.raises(ClimatuneError, match="did you mean 'batch'"):
        create_head("scalar", 8, 1, norm="bacth")


def test_unknown_head() -> None:
    with pytest.raises(ClimatuneError, match="did you mean 'scalar'"):
        create_head("scaler", 8, 1)


@pytest.mark.parametrize(("kind", "kw"), [("field", {}), ("scalar", {"hidden": 8})])
def test_a_gaussian_head_predicts_a_mean_and_a_positive_scale(kind, kw):
    torch.manual_seed(0)
    net = build_net(
        "unet",
        ["tas"],
        n_out=2,
        head=kind,
        width=4,
        depth=1,
        head_kwargs=kw,
        distribution="gaussian",
    )
    x = torch.randn(3, 1, 1, 8, 8)
    mean, scale = net.forward_dist(x)
    assert mean.shape == scale.shape == ((3, 2, 8, 8) if kind == "field" else (3, 2))
    assert bool((scale >= SCALE_FLOOR).all())
    assert torch.equal(net(x), mean) and net.spec()["head_kwargs"]["distribution"] == "gaussian"
    plain = build_net("unet", ["tas"], n_out=2, head=kind, width=4, depth=1, head_kwargs=kw)
    assert plain.forward_dist(x)[1] is None and "distribution" not in plain.spec()["head_kwargs"]


def test_an_unknown_head_distribution_is_refused():
    with pytest.raises(ValueError, match="gaussian"):
        ModelConfig(head_distribution="laplace")
    with pytest.raises(ClimatuneError, match="unknown head distribution 'gausian'.*gaussian"):
        create_head("field", 4, 1, distribution="gausian")
