from __future__ import annotations

import pytest
import torch

from climatune.errors import ClimatuneError
from climatune.models import VariableStem, build_net

from .conftest import TINY, VARIABLES


def test_adding_variables_leaves_the_output_unchanged(make_inputs) -> None:
    net = build_net("unet", VARIABLES, history=2, n_static=3, **TINY).eval()
    fields, static = make_inputs(16, 24, n_vars=5)
    before = net(fields[:, :3], static)
    net.stem.add_variables(["pr", "psl"])
    assert net.variables == [*VARIABLES, "pr", "psl"]
    torch.testing.assert_close(net(fields, static), before)
    assert net.stem.proj["pr"].weight.abs().sum() == 0


def test_dropping_a_variable_removes_its_weights(make_inputs) -> None:
    net = build_net("resnet", VARIABLES, history=2, n_static=3, **TINY)
    net.stem.drop_variables(["sst"])
    assert net.variables == ["tas", "siconc"]
    assert not any("sst" in k for k in net.state_dict())
    fields, static = make_inputs(8, 8, n_vars=2)
    assert net(fields, static).shape == (2, 1, 8, 8)
    with pytest.raises(ClimatuneError, match="did you mean 'tas'"):
        net.stem.drop_variables(["taz"])


def test_variable_order_is_by_name(make_inputs) -> None:
    stem = VariableStem(VARIABLES, history=2, n_static=3, width=4)
    fields, static = make_inputs(6, 8)
    order = [2, 0, 1]
    out = stem(fields[:, order], static, names=[VARIABLES[i] for i in order])
    torch.testing.assert_close(out, stem(fields, static))


def test_mismatched_variables_are_a_user_error(make_inputs) -> None:
    stem = VariableStem(VARIABLES, history=2, n_static=3, width=4)
    fields, static = make_inputs(6, 8)
    with pytest.raises(ClimatuneError, match="missing: \\['siconc'\\].*did you mean 'siconc'"):
        stem(fields, static, names=["tas", "sst", "siconcc"])
    with pytest.raises(ClimatuneError, match="2 steps"):
        stem(fields[:, :, :1], static)
    with pytest.raises(ClimatuneError, match="static"):
        stem(fields)
    with pytest.raises(ClimatuneError, match="already"):
        stem.add_variables(["tas"])


def test_missing_values_are_flagged_not_propagated(make_inputs) -> None:
    stem = VariableStem(VARIABLES, history=2, n_static=3, width=4)
    fields, static = make_inputs(6, 8)
    fields.requires_grad_(True)
    holes = fields.detach().clone()
    holes[:, 1, :, :2] = float("nan")  # "land" in sst
    out = stem(holes, static)
    assert torch.isfinite(out).all()
    filled = torch.nan_to_num(holes)
    assert not torch.allclose(out, stem(filled, static))  # the validity channel differs
    stem(fields, static).sum().backward()
    assert torch.isfinite(fields.grad).all()


def test_static_shared_by_the_batch(make_inputs) -> None:
    stem = VariableStem(VARIABLES, history=2, n_static=3, width=4)
    fields, static = make_inputs(6, 8)
    static[1] = static[0]
    torch.testing.assert_close(stem(fields, static[0]), stem(fields, static))


def test_awkward_names_are_valid_module_keys(make_inputs) -> None:
    stem = VariableStem(["ta.850", "keys", "%x"], history=2, n_static=0, width=4)
    fields, _ = make_inputs(6, 8)
    assert stem(fields).shape == (2, 4, 6, 8)
    assert stem.variables == ["ta.850", "keys", "%x"]
    stem.drop_variables(["keys"])
    assert len(stem.proj) == 2


def test_reset_static_starts_from_zero(make_inputs) -> None:
    net = build_net("resnet", VARIABLES, history=2, n_static=3, **TINY).eval()
    fields, _ = make_inputs(8, 12)
    net.stem.reset_static(5)
    a, b = torch.randn(5, 8, 12), torch.randn(5, 8, 12)
    torch.testing.assert_close(net(fields, a), net(fields, b))  # statics not used yet
    assert net.spec()["n_static"] == 5
    net.stem.reset_static(0)
    assert not any(k.startswith("stem.static") for k in net.state_dict())
    assert net(fields).shape == (2, 1, 8, 12)
