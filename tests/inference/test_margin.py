"""The margin around a regional crop of a model's grid: its size, phase, inputs and effect."""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from climatune.data.samples import static_channels
from climatune.data.view import TaskView
from climatune.inference.margin import (
    CROP_MARGIN,
    MarginSamples,
    crop_margins,
    margin_static,
    trim_margins,
)
from climatune.models.net import build_net

LAT, LON = np.linspace(10.0, 64.0, 37), np.arange(200.0, 298.0, 2.0)  # 37 x 49, like A1B
GRID = {"lat": LAT.tolist(), "lon": LON.tolist()}


def _view(lat=LAT, lon=LON, kind="downscale"):
    fields = xr.Dataset(
        {"tas": (("time", "lat", "lon"), np.zeros((1, lat.size, lon.size)))},
        coords={"time": [0], "lat": lat, "lon": lon},
    )
    return TaskView(kind, fields, ["tas"], ["tas"], 1, 0, 4, {}, xr.DataArray(True))


def test_no_margin_on_the_models_own_grid_or_for_an_index():
    assert crop_margins(GRID, _view(), 4) is None
    assert crop_margins(GRID, _view(LAT[6:31], LON[10:29], kind="index"), 4) is None


def test_a_crop_keeps_the_phase_its_cells_had_on_the_trained_grid():
    for k in (1, 2, 4, 8):
        trained_top, trained_left = (-37 % k) // 2, (-49 % k) // 2  # pad_to_multiple's
        for r0, c0 in ((6, 10), (7, 11), (1, 1), (9, 3)):
            view = _view(LAT[r0 : r0 + 25], LON[c0 : c0 + 19])
            top, bottom, left, right = crop_margins(GRID, view, k)
            assert min(top, bottom, left, right) >= CROP_MARGIN
            assert max(top, bottom, left, right) < CROP_MARGIN + k
            # the padded crop is a multiple of k, so the backbone pads it no further, and
            # its first cell sits where it sat on the trained grid, modulo k
            assert (25 + top + bottom) % k == 0 and (19 + left + right) % k == 0
            assert (top - r0 - trained_top) % k == 0 and (left - c0 - trained_left) % k == 0
    # a crop in longitude only: latitudes are predicted as on the trained grid
    assert crop_margins(GRID, _view(LAT, LON[10:29]), 4)[:2] == (0, 0)


def test_the_margin_continues_the_position_inputs_and_repeats_the_rest():
    view = _view(LAT[6:31], LON[10:29])
    margins = crop_margins(GRID, view, 4)
    top, bottom, left, right = margins
    static = torch.from_numpy(static_channels(view)[1])
    got = margin_static(static, view, margins)
    assert got.shape == (5, 25 + top + bottom, 19 + left + right)
    lat = LAT[6] + 1.5 * np.arange(-top, 25 + bottom)  # the grid continued at its spacing
    grown = _view(lat, LON[10] + 2.0 * np.arange(-left, 19 + right))
    expected = torch.from_numpy(static_channels(grown)[1])
    assert torch.allclose(got[:4], expected[:4], atol=1e-5)  # sin/cos of lat and lon
    assert torch.equal(got[4], torch.ones_like(got[4]))  # the valid mask, replicated
    fields = torch.arange(25 * 19, dtype=torch.float32).reshape(1, 1, 25, 19)
    samples = MarginSamples([{"fields": fields, "anchor": torch.tensor(3)}], margins, False)
    padded = samples[0]["fields"]
    assert padded.shape == (1, 1, 25 + top + bottom, 19 + left + right)
    assert torch.equal(padded[..., :top, left:-right], fields[..., :1, :].expand(1, 1, top, 19))
    assert np.array_equal(trim_margins(padded.numpy(), margins), fields.numpy())
    assert trim_margins(fields.numpy(), None) is not None


def test_a_crop_along_the_trained_edges_gets_no_margin_on_them():
    for k in (1, 2, 4, 8):
        pad_top, pad_left = (-37 % k) // 2, (-49 % k) // 2  # pad_to_multiple's
        pad_bottom, pad_right = -37 % k - pad_top, -49 % k - pad_left
        for h, w in ((25, 19), (24, 20), (30, 33)):
            top, bottom, left, right = crop_margins(GRID, _view(LAT[:h], LON[:w]), k)
            assert top == 0 and left == 0 and min(bottom, right) >= CROP_MARGIN
            # the backbone's own padding puts before the first cell what it put on the
            # trained grid, so every cell keeps its phase and the edge looks as it did
            assert (-(h + bottom) % k) // 2 == pad_top and (-(w + right) % k) // 2 == pad_left
            top, bottom, left, right = crop_margins(GRID, _view(LAT[-h:], LON[-w:]), k)
            assert bottom == 0 and right == 0 and min(top, left) >= CROP_MARGIN
            dh, dw = -(h + top) % k, -(w + left) % k
            assert dh - dh // 2 == pad_bottom and dw - dw // 2 == pad_right


def test_a_crop_of_a_global_grid_has_no_trained_edge_in_longitude():
    lon = np.arange(0.0, 360.0, 7.5)
    grid = {"lat": LAT.tolist(), "lon": lon.tolist()}
    left, right = crop_margins(grid, _view(LAT[5:30], lon[:19]), 4)[2:]
    assert min(left, right) >= CROP_MARGIN  # 0° is no edge on a global grid


def test_a_crop_along_the_trained_edge_predicts_it_as_the_whole_grid_does():
    torch.manual_seed(0)
    net = build_net("unet", ["tas"], n_static=0, width=4, depth=2).eval()
    whole = torch.randn(1, 1, 1, 37, 49)
    with torch.no_grad():
        reference = net(whole).numpy()
    for rows, cols in ((slice(0, 32), slice(0, 36)), (slice(5, 37), slice(13, 49))):
        view = _view(LAT[rows], LON[cols])
        margins = crop_margins(GRID, view, net.backbone.grid_multiple)
        crop = whole[..., rows, cols]
        padded = MarginSamples([{"fields": crop[0]}], margins, False)[0]["fields"][None]
        with torch.no_grad():
            got = trim_margins(net(padded).numpy(), margins)
        near = (
            (..., slice(0, 5), slice(0, 5))
            if rows.start == 0
            else (..., slice(-5, None), slice(-5, None))
        )
        assert np.allclose(got[near], reference[..., rows, cols][near], atol=1e-5)


def test_a_crop_predicts_its_middle_as_the_whole_grid_does():
    # a U-Net pools by 2 x 2: shifted by one cell against its trained lattice it is
    # another function of its inputs. With the margins, the cells of a crop that its
    # edges cannot reach get exactly the whole grid's prediction; one cell off, they do not.
    torch.manual_seed(0)
    net = build_net("unet", ["tas"], n_static=0, width=4, depth=1).eval()
    whole = torch.randn(1, 1, 1, 37, 49)
    r0, c0, h, w = 5, 8, 28, 32
    view = _view(LAT[r0 : r0 + h], LON[c0 : c0 + w])
    margins = crop_margins(GRID, view, net.backbone.grid_multiple)
    crop = whole[..., r0 : r0 + h, c0 : c0 + w]

    def predict(margins):
        padded = MarginSamples([{"fields": crop[0]}], margins, False)[0]["fields"][None]
        with torch.no_grad():
            return trim_margins(net(padded).numpy(), margins)

    with torch.no_grad():
        reference = net(whole).numpy()[..., r0 : r0 + h, c0 : c0 + w]
    middle = (..., slice(11, h - 11), slice(11, w - 11))  # beyond the receptive field
    assert np.allclose(predict(margins)[middle], reference[middle], atol=1e-5)
    top, bottom, left, right = margins
    shifted = (top + 1, bottom + 1, left + 1, right + 1)
    assert not np.allclose(predict(shifted)[middle], reference[middle], atol=1e-3)
