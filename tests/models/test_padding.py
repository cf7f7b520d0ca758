from __future__ import annotations

import pytest
import torch

from climatune.errors import ClimatuneError
from climatune.models.padding import GeoConv2d, crop, geo_pad, pad_to_multiple


def test_geo_pad_wraps_longitude_and_pads_latitude() -> None:
    x = torch.arange(12.0).view(1, 1, 3, 4)
    out = geo_pad(x, 1, 1, 2, 1, periodic_lon=True)
    assert out.shape == (1, 1, 5, 7)
    assert torch.equal(out[0, 0, 1], torch.tensor([2.0, 3, 0, 1, 2, 3, 0]))
    assert torch.equal(out[0, 0, 0], torch.zeros(7))
    rep = geo_pad(x, 1, 0, 0, 0, periodic_lon=True, edge_padding="replicate")
    assert torch.equal(rep[0, 0, 0], x[0, 0, 0])


def test_geo_pad_wraps_more_than_the_grid() -> None:
    x = torch.arange(3.0).view(1, 1, 1, 3)
    out = geo_pad(x, 0, 0, 4, 4, periodic_lon=True)
    assert out[0, 0, 0].tolist() == [2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0]


def test_pad_to_multiple_round_trips() -> None:
    x = torch.randn(2, 3, 37, 49)
    padded, box = pad_to_multiple(x, 8, periodic_lon=True)
    assert padded.shape[-2:] == (40, 56)
    assert torch.equal(crop(padded, box), x)


@pytest.mark.parametrize("edge_padding", ["zeros", "replicate"])
def test_periodic_conv_commutes_with_lon_roll(edge_padding: str) -> None:
    conv = GeoConv2d(2, 3, 3, periodic_lon=True, edge_padding=edge_padding)
    x = torch.randn(1, 2, 6, 10)
    torch.testing.assert_close(conv(x.roll(3, -1)), conv(x).roll(3, -1))
    flat = GeoConv2d(2, 3, 3, periodic_lon=False, edge_padding=edge_padding)
    assert not torch.allclose(flat(x.roll(3, -1)), flat(x).roll(3, -1), atol=1e-4)


def test_bad_edge_padding() -> None:
    with pytest.raises(ClimatuneError, match="edge_padding.*did you mean 'zeros'"):
        GeoConv2d(1, 1, 3, edge_padding="zero")
