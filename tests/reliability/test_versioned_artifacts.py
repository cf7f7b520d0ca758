"""Artifacts are versioned: old ones keep loading (migrated) and predicting the same values.

The fixtures under ``tests/fixtures/`` were made by ``python -m tests.fixtures.make_fixtures``
(see that file for how and when to regenerate them): a schema-1 artifact of a tiny network,
the same artifact as pre-release ClimaTune wrote it (schema 0: no ``schema_version``, no
``provenance``), and a summary of its predictions on ``tiny_archive``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from climatune.cli import main
from climatune.data.io import open_dataset
from climatune.inference import SCHEMA_VERSION, load_model
from climatune.testing import tiny_archive
from climatune.training.callbacks import weights_digest
from tests.fixtures.make_fixtures import direct_prediction, prediction_summary

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
V1, V0 = FIXTURES / "artifact_v1" / "model", FIXTURES / "artifact_v0" / "model"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return tiny_archive(tmp_path_factory.mktemp("fixture-data") / "tiny.nc")


def _raw(model_dir: Path) -> dict:
    return json.loads((model_dir / "climatune.json").read_text())


def _assert_summary(pred: xr.Dataset) -> None:
    expected = json.loads((FIXTURES / "artifact_v1" / "expected.json").read_text())
    got = prediction_summary(pred)
    assert set(got) == set(expected)
    for name, want in expected.items():
        assert got[name]["valid"] == want["valid"], name
        for key in ("mean", "std", "sample"):
            np.testing.assert_allclose(
                got[name][key], want[key], rtol=1e-5, err_msg=f"{name} {key}"
            )


def test_the_fixtures_are_small_and_what_they_claim():
    assert sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file()) < 200_000
    assert _raw(V1)["schema_version"] == 1 and "provenance" in _raw(V1)
    assert "schema_version" not in _raw(V0) and "provenance" not in _raw(V0)
    assert _raw(V1)["architecture"]["backbone_kwargs"]["width"] == 4


def test_schema_1_artifact_keeps_loading_and_predicting(data, tmp_path, capsys):
    model = load_model(V1)
    assert model.meta.outputs == ["tas", "sst"]
    pred = model.predict(open_dataset(data))
    _assert_summary(pred)
    direct = direct_prediction(model, open_dataset(data).load())
    np.testing.assert_allclose(pred.to_array(), direct.to_array(), rtol=1e-5)
    out = tmp_path / "pred.nc"
    assert main(["predict", str(V1), "--input", str(data), "--output", str(out)]) == 0
    with xr.open_dataset(out) as written:
        assert written.attrs["Conventions"] == "CF-1.8"
        np.testing.assert_allclose(written.tas.values, pred.tas.values, rtol=1e-6)


def test_schema_0_artifact_is_migrated_on_load(data):
    old, new = load_model(V0), load_model(V1)
    assert old.meta.data["schema_version"] == SCHEMA_VERSION
    assert old.meta.data["provenance"] == {}
    assert weights_digest(old.net) == weights_digest(new.net)
    _assert_summary(old.predict(open_dataset(data)))


def test_new_artifacts_carry_the_current_schema_and_provenance(shared):
    raw = _raw(shared["model"] / "model")
    assert raw["schema_version"] == SCHEMA_VERSION
    assert raw["provenance"]["data"] == str(shared["archive"])
    assert set(raw["provenance"]) >= {"blocks", "n_samples", "time_range"}


# Computed on main before schema 2 (the residual in the net spec, each task setting once):
# per variable, the NaN-aware sum and the cells [t, lat, lon] of model.predict on tiny_archive.
_BEFORE_SCHEMA_2 = {
    "tas": (3339681.480545044, [193.00784301757812, 198.644287109375, 291.261474609375]),
    "sst": (2091996.1884536743, [174.62332153320312, 179.7056121826172, 263.72021484375]),
}
_CELLS = ([0, 5, -1], 2, 3)


def test_migrated_schema_1_artifact_predicts_exactly_what_it_did(data):
    model = load_model(V1)
    assert model.meta.data["architecture"]["residual_index"] == [0, 1]
    stored = {"mask_ratio": 0.5, "mask_patch": 4, "index": None}  # task.patch renamed
    assert model.meta.data["config"]["task"] == stored
    assert model.meta.task == {**model.meta.data["config"]["task"], **_raw(V1)["task"]}
    pred = model.predict(open_dataset(data))
    for name, (total, cells) in _BEFORE_SCHEMA_2.items():
        values = pred[name].values
        np.testing.assert_array_equal(values[_CELLS], np.float32(cells), err_msg=name)
        np.testing.assert_allclose(np.nansum(values.astype("float64")), total, rtol=1e-12)
