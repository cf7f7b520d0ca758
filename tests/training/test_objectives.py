"""Objectives weighed together and random crops: the loss, the windows, the defaults."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from climatune import load_model
from climatune.cli import main
from climatune.config import dump_config
from climatune.data.io import open_dataset
from climatune.data.samples import TaskSamples, fit_normalizer, static_channels
from climatune.data.settings import TaskConfig
from climatune.data.view import build_view
from climatune.data.windows import draw_windows, keep_masks
from climatune.explain import run as explain_run
from climatune.explain.inputs import load_inputs
from climatune.explain.run import explain
from climatune.explain.targets import TargetFunction, parse_target
from climatune.inference import margined_static, model_view, predict_view, static_for
from climatune.inference.margin import (
    CROP_MARGIN,
    MarginSamples,
    crop_margins,
    margin_static,
    trim_margins,
)
from climatune.testing import tiny_config
from climatune.training.losses import weighted_mse
from climatune.training.objectives import take_window
from climatune.training.workflow import build_task, new_net
from climatune.workflows.finetuning import finetune
from climatune.workflows.pretraining import pretrain
from climatune.workflows.runs import training_setup

BOTH = "task.objectives={forecast: 1.0, reconstruct: 0.5}"
CROP = "task.random_crop={size: [4, 6]}"


def _task(archive, *sets):
    cfg = tiny_config(archive, "data.normalization=global", *sets)
    view = build_view(cfg.data, cfg.task)
    net = new_net(cfg.model, view, 5, cfg.seed)
    task = build_task(training_setup(cfg), view, net)
    samples = TaskSamples(view, "train", fit_normalizer(view))
    batch = {
        k: torch.stack([samples[i][k] for i in range(4)]) for k in ("fields", "target", "anchor")
    }
    return task, batch


def test_the_loss_is_the_weighted_sum_of_the_objectives(archive):
    task, batch = _task(archive, BOTH)
    parts = task.losses(batch, "val")
    total = task._step(batch, "val")
    expected = 1.0 * parts["forecast"] + 0.5 * parts["reconstruct"]
    assert float(total) == pytest.approx(float(expected), rel=1e-6)
    # the forecast part is the loss of the network alone ...
    static = task.static.expand(4, *task.static.shape)
    alone = weighted_mse(task.net(batch["fields"], static), batch["target"], task.weight)
    assert float(parts["forecast"]) == pytest.approx(float(alone), rel=1e-6)
    # ... and the reconstruction part that of its own head on the masked inputs at step t
    anchors = batch["anchor"].tolist()
    keep = torch.from_numpy(
        keep_masks(anchors, seed=0, epoch=0, shape=(8, 16), mask_patch=4, ratio=0.5)
    )
    masked = batch["fields"] * keep[:, None, None]
    out = task.reconstruction.head(task.net.forward_features(masked, static)) + masked[:, :, -1]
    sst_sea = task.reconstruction.valid[1]  # sst is NaN north of 40°N
    assert bool(sst_sea.any()) and not bool(sst_sea.all())
    target = batch["fields"][:, :, -1].clone()
    target[:, 1, ~sst_sea] = torch.nan
    assert float(parts["reconstruct"]) == pytest.approx(
        float(weighted_mse(out, target, task.weight)), rel=1e-6
    )
    assert float(parts["reconstruct"]) > 0 and keep.float().mean() < 0.9


def test_a_training_batch_is_cut_to_its_windows_with_edge_padding(archive):
    task, batch = _task(archive, CROP)
    win = task._window(batch, "train", 0)
    assert win.fields.shape[-2:] == (4, 6) and win.target.shape[-2:] == (4, 6)
    assert win.static.shape == (4, 5, 4, 6) and win.weight.shape == (4, 1, 4, 6)
    assert not win.periodic  # 6 of 16 longitudes: the window's edges are real
    rows, cols = draw_windows(
        batch["anchor"].tolist(), seed=0, epoch=0, grid=(8, 16), size=(4, 6), periodic_lon=True
    )
    for b in range(4):
        cells = np.ix_(rows[b], cols[b])
        assert torch.equal(win.fields[b], batch["fields"][b][..., cells[0], cells[1]])
        assert torch.equal(win.static[b], task.static[:, cells[0], cells[1]])
    x = torch.arange(2 * 3 * 5, dtype=torch.float32).reshape(2, 3, 5)
    got = take_window(x, torch.tensor([[1, 2], [0, 1]]), torch.tensor([[4, 0], [2, 3]]))
    assert got.tolist() == [[[9.0, 5.0], [14.0, 10.0]], [[17.0, 18.0], [22.0, 23.0]]]
    # validation sees the whole domain; the net's circular padding is restored
    assert task._window(batch, "val", 0).fields.shape[-2:] == (8, 16)
    task.losses(batch, "train", 0)
    assert task.net.backbone.periodic_lon


def test_the_default_config_is_unchanged(archive, tmp_path):
    assert TaskConfig().objectives is None and TaskConfig().random_crop is None
    task, _ = _task(archive)
    assert task.objectives is None and task.reconstruction is None and task.crop is None
    default = pretrain(
        tiny_config(archive, "trainer.max_epochs=1", "trainer.limit_train_batches=0.25"),
        out=tmp_path / "a",
    )
    alone = pretrain(
        tiny_config(
            archive,
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=0.25",
            "task.objectives={forecast: 1.0}",
        ),
        out=tmp_path / "b",
    )
    first, second = (load_file(str(r / "model" / "weights.safetensors")) for r in (default, alone))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)  # bit-identical


def test_a_combined_cropped_pretrain_logs_each_objective_and_fine_tunes(archive, tmp_path):
    run = pretrain(
        tiny_config(
            archive, "trainer.max_epochs=1", "trainer.limit_train_batches=0.25", BOTH, CROP
        ),
        out=tmp_path / "run",
    )
    meta = json.loads((run / "model" / "climatune.json").read_text())
    assert meta["config"]["task"]["objectives"] == {"forecast": 1.0, "reconstruct": 0.5}
    crop = {"size": [4, 6], "prob": 1.0, "min_size": None}  # unset keys are recorded as null
    assert meta["config"]["task"]["random_crop"] == crop
    header = (run / "logs" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_loss_epoch", "train_forecast_loss", "train_reconstruct_loss"} <= set(header)
    assert {"val_loss", "val_forecast_loss", "val_reconstruct_loss"} <= set(header)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert any(k.startswith("reconstruction.head.") for k in ckpt)  # trained, resumable ...
    tuned = finetune(
        tiny_config(
            archive,
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=0.25",
            "finetune.strategy=lora",
        ),
        run,
        out=tmp_path / "ft",
        quiet=True,
    )
    assert (tuned / "model" / "weights.safetensors").exists()  # ... but not exported


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ["task.objectives={forecast: 1, recon: 1}"],
            "unknown objective(s) ['recon'] (did you mean 'reconstruct'?)",
        ),
        (["task.objectives={reconstruct: 1}"], "must weigh the task's own, 'forecast'"),
        (["task.objectives={forecast: 1, reconstruct: 0}"], "must be positive"),
        (
            ["task.kind=downscale", "task.objectives={downscale: 1, reconstruct: 1}"],
            "forecast only",
        ),
        (["task.random_crop={size: [9, 4]}"], "[9, 4] is larger than the training grid [8, 16]"),
        (["task.random_crop={size: [4, 4], prob: 0}"], "random_crop.prob"),
        (["task.random_crop={size: [4, 4], min_size: [5, 2]}"], "min_size [5, 2] must lie"),
    ],
)
def test_bad_objectives_and_crops_are_one_line_errors(archive, tmp_path, capsys, sets, message):
    config = tmp_path / "tiny.yaml"
    config.write_text(dump_config(tiny_config(archive)))
    args = ["pretrain", "--config", str(config), "--out", str(tmp_path / "run")]
    for item in sets:
        args += ["--set", item]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("climatune: error:") and message in err[0]
    assert not (tmp_path / "run").exists()


def test_a_fine_tune_refuses_pretraining_settings(archive, tmp_path):
    with pytest.raises(Exception, match="task.random_crop set how a network is pre-trained"):
        finetune(tiny_config(archive, CROP), tmp_path / "none", out=tmp_path / "ft")


def test_a_global_model_predicts_a_regional_crop_with_edge_padding(archive, tmp_path):
    sets = ["trainer.max_epochs=1", "trainer.limit_train_batches=0.25"]
    # global statistics: an anomaly climatology is kept per cell of the training grid
    run = pretrain(tiny_config(archive, "data.normalization=global", *sets), out=tmp_path / "run")
    model = load_model(run)
    assert model.net.backbone.periodic_lon  # trained on the globe
    crop = open_dataset(archive).isel(lon=slice(2, 8))  # 6 of 16 longitudes
    view = model.view(crop)
    assert not view.periodic_lon
    got = model.predict(crop, units="model").tas.values
    # the crop is predicted inside its margin of replicated cells (inference.margin)
    margins = crop_margins(model.meta.data["grid"], view, model.net.backbone.grid_multiple)
    assert margins is not None and margins[:2] == (0, 0) and min(margins[2:]) >= CROP_MARGIN
    samples = MarginSamples(
        TaskSamples(view, "predict", model.normalizer, mask_ratio=0.0), margins, False
    )
    fields = torch.stack([samples[i]["fields"] for i in range(len(samples))])
    static = margin_static(torch.from_numpy(static_channels(view)[1]), view, margins)
    with torch.no_grad():
        wrapped = trim_margins(model.forward(fields, static)[:, 0].numpy(), margins)
        model.net.set_periodic_lon(False)
        edges = trim_margins(model.forward(fields, static)[:, 0].numpy(), margins)
        model.net.set_periodic_lon(True)
    mean, std = model.normalizer.mean_["tas"], model.normalizer.std_["tas"]
    assert np.allclose(got, edges * std + mean, atol=1e-3)
    assert not np.allclose(
        got, wrapped * std + mean, atol=1e-3
    )  # the east edge is not the west's neighbour
    assert model.net.backbone.periodic_lon  # restored


def test_explain_pads_a_regional_crop_of_a_global_model_as_predict_does(
    archive, tmp_path, monkeypatch
):
    sets = ["trainer.max_epochs=1", "trainer.limit_train_batches=0.25"]
    run = pretrain(tiny_config(archive, "data.normalization=global", *sets), out=tmp_path / "run")
    model = load_model(run)
    crop = tiny_config(
        archive, "data.normalization=global", "data.region={lat: [-90, 90], lon: [45, 160]}"
    )
    view = build_view(crop.data, crop.task)
    assert view.fields.sizes["lon"] == 6 and not view.periodic_lon
    seen: list[bool] = []
    forward = TargetFunction.forward

    def recording(self, fields):
        seen.append(self.model.net.backbone.periodic_lon)
        return forward(self, fields)

    monkeypatch.setattr(TargetFunction, "forward", recording)
    expl = explain(model, view, method="saliency", samples=2)
    assert seen and not any(seen)  # every pass pads the crop's edges, none wraps them
    assert model.net.backbone.periodic_lon  # restored
    # and it changes the attributions: wrapping the crop's east edge onto its west edge
    # explains another function than the one predict computes
    monkeypatch.setattr(explain_run, "padded_for", lambda model, view: contextlib.nullcontext())
    wrapped = explain(model, view, method="saliency", samples=2)
    assert not np.allclose(expl.attribution.values, wrapped.attribution.values)


def test_explain_reads_a_crop_of_a_regional_model_in_the_margin_predict_reads_it_in(
    archive, tmp_path, monkeypatch
):
    sets = ["data.normalization=global", "trainer.max_epochs=1"]
    domain = "data.region={lat: [-60, 60], lon: [30, 300]}"  # a regional grid: 6 x 13 cells
    run = pretrain(tiny_config(archive, *sets, domain), out=tmp_path / "run")
    model = load_model(run)
    crop = tiny_config(archive, *sets, "data.region={lat: [-60, 60], lon: [90, 250]}")
    view = model_view(model, build_view(crop.data, crop.task))
    static, margins = margined_static(model, view)
    assert margins is not None and min(margins[2:]) >= CROP_MARGIN  # inside the domain
    target = parse_target(None, view, model.meta.outputs, model.meta.units("outputs"))
    inputs = load_inputs(view, "test", 3, model.normalizer, baseline="climatology")
    explained = TargetFunction(model, static, target, margins=margins)(inputs.fields)
    # the scalar explained is the regional mean of what predict gives for those samples
    pred = predict_view(model, view, "test", units="model")[target.variable].values[:3]
    expected = np.nansum(pred * target.weights, axis=(-2, -1))
    np.testing.assert_allclose(explained.detach().numpy(), expected, rtol=1e-4)
    unpadded = TargetFunction(model, static_for(model, view), target)(inputs.fields)
    assert not np.allclose(unpadded.detach().numpy(), expected, rtol=1e-3)
    seen: list = []
    forward = TargetFunction.forward

    def recording(self, fields):
        seen.append(self.margins)
        return forward(self, fields)

    monkeypatch.setattr(TargetFunction, "forward", recording)
    got = explain(model, view, method="saliency", samples=3).attribution.sel(variable="tas")
    assert seen and all(m == margins for m in seen)  # attributions and deletion curves
    assert np.isfinite(got.values).all() and float(abs(got).max()) > 0
