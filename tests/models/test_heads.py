from __future__ import annotations

import pytest
import torch

from climatune.errors import ClimatuneError
from climatune.models import create_head


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


def test_unknown_head() -> None:
    with pytest.raises(ClimatuneError, match="did you mean 'scalar'"):
        create_head("scaler", 8, 1)
