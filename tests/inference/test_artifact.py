"""The artifact's JSON: each task setting stored once, and the stored config's sections known."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from safetensors.torch import load_file, save_file

from climatune.config import Config, model_config
from climatune.data.settings import TaskConfig
from climatune.errors import ClimatuneError
from climatune.inference import TASK_KEYS, load_model
from climatune.inference.artifact import CONFIG_SECTIONS
from climatune.testing import tiny_archive, tiny_config
from climatune.workflows.pretraining import pretrain

V1 = Path(__file__).resolve().parents[1] / "fixtures" / "artifact_v1" / "model"


def test_the_stored_config_sections_are_the_configs():
    assert set(CONFIG_SECTIONS) == set(Config.model_fields)
    assert set(TASK_KEYS) < set(TaskConfig.model_fields)


def test_a_migrated_artifact_holds_each_task_setting_once():
    raw = json.loads((V1 / "climatune.json").read_text())
    meta = load_model(V1).meta
    assert meta.data["task"] == raw["task"]
    assert not set(meta.data["config"]["task"]) & set(TASK_KEYS)
    assert "residual_index" not in meta.data
    cfg = model_config(meta, ["trainer.max_epochs=3"])
    with pytest.warns(FutureWarning, match="task.patch is now task.mask_patch"):
        before = TaskConfig.model_validate(raw["config"]["task"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the migration renamed the old key: no warning
        assert cfg.task == meta.task_config == before
    assert cfg.trainer.max_epochs == 3 and cfg.data == meta.data_config


@pytest.fixture(scope="module")
def anomaly_run(tmp_path_factory):
    """A monthly forecast model, normalised in anomalies (the default for monthly data)."""
    root = tmp_path_factory.mktemp("anomaly")
    archive = tiny_archive(root / "tiny.nc")
    return archive, pretrain(tiny_config(archive, "trainer.max_epochs=1"), out=root / "run")


def test_the_climatology_has_its_own_file_and_round_trips(anomaly_run):
    _, run = anomaly_run
    raw = json.loads((run / "model" / "climatune.json").read_text())
    tensors = load_file(str(run / "model" / "normalization.safetensors"))
    weights = load_file(str(run / "model" / "weights.safetensors"))
    assert sorted(tensors) == ["sst", "tas"]  # a network weight cannot hide behind them
    assert not any("clim" in k for k in weights)
    months = list(range(1, 13))
    assert raw["normalization"]["climatology"] == {"tas": months, "sst": months}
    assert raw["normalization"]["mean"]["tas"] == pytest.approx(0.0, abs=1e-9)
    norm = load_model(run).normalizer
    for name in ("sst", "tas"):
        stored = tensors[name].numpy()
        assert stored.shape == (12, 8, 16) and stored.dtype == np.float32
        np.testing.assert_array_equal(norm.climatology_[name], stored)
    sst = norm.climatology_["sst"]
    assert (sst[:, -1] == 0).all() and (sst[:, 0] > 100).all()  # land north of 40°N: 0


def test_predict_adds_the_climatology_back(anomaly_run):
    archive, run = anomaly_run
    model = load_model(run)
    for p in model.net.parameters():  # the network's own output is 0: only the residual,
        p.data.zero_()  # the anomaly at t, is left
    ds = xr.open_dataset(archive).load()
    pred = model.predict(ds)
    train = ds.tas.sel(time=slice("2000", "2004"))
    clim = train.groupby("time.month").mean("time")
    x = ds.tas.isel(time=slice(0, -1))
    months, next_months = x.time.dt.month, pred.time.dt.month
    want = clim.sel(month=next_months).values + x.values - clim.sel(month=months).values
    assert pred.tas.shape == (95, 8, 16)
    np.testing.assert_allclose(pred.tas.values, want, atol=2e-3)  # full values, in K
    assert float(pred.tas.mean()) == pytest.approx(
        float(ds.tas.isel(time=slice(1, None)).mean()), abs=2.0
    )


def test_an_annual_forecast_keeps_the_global_statistics(tmp_path):
    ds = xr.open_dataset(tiny_archive(tmp_path / "monthly.nc")).load()
    annual = ds.resample(time="YS").mean(keep_attrs=True)
    annual.to_netcdf(tmp_path / "annual.nc")
    blocks = ("data.split.train=[2000, 2003]", "data.split.val=[2004, 2005]")
    cfg = tiny_config(tmp_path / "annual.nc", "trainer.max_epochs=1", *blocks)
    run = pretrain(cfg, out=tmp_path / "run")
    raw = json.loads((run / "model" / "climatune.json").read_text())["normalization"]
    tensors = load_file(str(run / "model" / "weights.safetensors"))
    assert "climatology" not in raw and not any("clim" in k for k in tensors)
    assert not (run / "model" / "normalization.safetensors").exists()
    train = annual.sel(time=slice("2000", "2003"))
    assert raw["mean"]["tas"] == pytest.approx(float(train.tas.astype("f8").mean()), rel=1e-12)
    assert raw["std"]["tas"] == pytest.approx(float(train.tas.astype("f8").std()), rel=1e-9)


def _broken_climatology(run: Path, tmp_path: Path, change) -> Path:
    """A copy of ``run``'s model whose ``normalization.safetensors`` went through ``change``."""
    model = Path(shutil.copytree(run / "model", tmp_path / "model"))
    tensors = load_file(str(model / "normalization.safetensors"))
    change(tensors)
    save_file(tensors, str(model / "normalization.safetensors"))
    return model


def _nan(t: dict) -> None:
    t["tas"][3, 2, 1] = float("nan")


def _wrong_grid(t: dict) -> None:
    t["tas"] = t["tas"][:, :-1].contiguous()


def _eleven_months(t: dict) -> None:
    t["tas"] = t["tas"][:11].contiguous()


def _float64(t: dict) -> None:
    t["tas"] = t["tas"].double()


def _dropped(t: dict) -> None:
    del t["sst"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_nan, "tensor 'tas' holds NaN or infinite values"),
        (_wrong_grid, "tensor 'tas' is [12, 7, 16], not 12 calendar months on the [8, 16] grid"),
        (_eleven_months, "tensor 'tas' is [11, 8, 16], not 12 calendar months"),
        (_float64, "tensor 'tas' is torch.float64, not torch.float32"),
        (_dropped, "holds climatologies of ['tas'], but climatune.json names ['sst', 'tas']"),
    ],
)
def test_a_broken_climatology_is_refused_naming_the_file_and_tensor(
    anomaly_run, tmp_path, change, message
):
    _, run = anomaly_run
    model = _broken_climatology(run, tmp_path, change)
    with pytest.raises(ClimatuneError) as err:
        load_model(model)
    text = str(err.value)
    assert "\n" not in text and text.startswith(str(model / "normalization.safetensors"))
    assert message in text


def test_a_missing_or_unnamed_climatology_file_is_refused(anomaly_run, tmp_path):
    _, run = anomaly_run
    model = Path(shutil.copytree(run / "model", tmp_path / "model"))
    (model / "normalization.safetensors").unlink()
    with pytest.raises(ClimatuneError, match=r"normalization.safetensors is missing, but"):
        load_model(model)
    shutil.copy(run / "model" / "normalization.safetensors", model)
    raw = json.loads((model / "climatune.json").read_text())
    del raw["normalization"]["climatology"]
    (model / "climatune.json").write_text(json.dumps(raw))
    with pytest.raises(ClimatuneError, match=r"holds a climatology, but climatune.json names none"):
        load_model(model)
