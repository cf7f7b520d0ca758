"""Pre-training end to end: artifact contents, loss masking, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from climatune import load_model
from climatune.cli import main
from climatune.data.io import open_dataset
from climatune.testing import tiny_config
from climatune.training.callbacks import weights_digest
from climatune.training.losses import weighted_mse
from climatune.workflows.pretraining import pretrain


def test_pretrain_writes_a_complete_artifact(archive, tmp_path):
    run = pretrain(tiny_config(archive), out=tmp_path / "run")
    meta = json.loads((run / "model" / "climatune.json").read_text())
    assert meta["schema_version"] == 2
    assert [v["name"] for v in meta["inputs"]] == ["tas", "sst"]
    assert meta["inputs"][0]["units"] == "K"
    # monthly data: anomaly normalisation, so the absolute values (in K) are in the
    # climatology, and the stored mean is that of the anomalies
    assert meta["normalization"]["climatology"]["tas"] == list(range(1, 13))
    assert abs(meta["normalization"]["mean"]["tas"]) < 1e-6
    clim = load_file(str(run / "model" / "normalization.safetensors"))["tas"]
    train = open_dataset(archive).tas.sel(time=slice("2000", "2004"))
    assert clim.shape == (12, 8, 16) and float(clim.mean()) > 200
    assert float(clim.mean()) == pytest.approx(float(train.mean()), abs=1e-3)
    assert meta["grid"]["calendar"] == "noleap"
    assert meta["provenance"]["blocks"]["train"] == [2000, 2004]
    assert (run / "config.yaml").exists() and (run / "checkpoints" / "last.ckpt").exists()
    assert (run / "logs" / "metrics.csv").exists()
    assert any((run / "logs" / "tb").iterdir())
    tensors = load_file(str(run / "model" / "weights.safetensors"))
    assert "__static__" in tensors and tensors["__static__"].shape[-2:] == (8, 16)


def test_loaded_model_predicts_denormalised_fields_with_coords(archive, tmp_path):
    run = pretrain(tiny_config(archive), out=tmp_path / "run")
    pred = load_model(run).predict(open_dataset(archive))
    assert set(pred.data_vars) == {"tas", "sst"}
    assert pred.tas.attrs["units"] == "K"
    assert 150 < float(pred.tas.mean()) < 350
    # sst is NaN on land (lat >= 40) and finite elsewhere
    land = pred.sst.sel(lat=slice(40, None))
    assert bool(land.isnull().all()) and bool(pred.sst.sel(lat=slice(None, 30)).notnull().all())


def test_loss_ignores_nan_cells_and_weighs_latitude():
    pred = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([[[[1.0, float("nan")], [2.0, 2.0]]]])
    weight = torch.tensor([[1.0, 1.0], [0.5, 0.5]])
    expected = (1.0 * 1 + 0.5 * 4 + 0.5 * 4) / (1.0 + 0.5 + 0.5)
    assert float(weighted_mse(pred, target, weight)) == pytest.approx(expected)


def test_same_seed_gives_identical_weights(archive, tmp_path):
    a = pretrain(tiny_config(archive), out=tmp_path / "a")
    b = pretrain(tiny_config(archive), out=tmp_path / "b")
    c = pretrain(tiny_config(archive, "seed=1"), out=tmp_path / "c")
    digest = [weights_digest(load_model(r).net) for r in (a, b, c)]
    assert digest[0] == digest[1] != digest[2]


@pytest.mark.parametrize("backbone", ["resnet", "vit"])
def test_every_backbone_trains(archive, tmp_path, backbone):
    extra = ["model.patch=4"] if backbone == "vit" else []
    run = pretrain(
        tiny_config(archive, f"model.backbone={backbone}", "trainer.max_epochs=1", *extra),
        out=tmp_path / backbone,
    )
    assert load_model(run).meta.data["architecture"]["backbone"] == backbone


def test_cli_pretrain_with_overrides(archive, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data:\n  path: {archive}\n  variables: [tas]\nmodel:\n  width: 8\n  depth: 1\n"
    )
    rc = main(
        [
            "pretrain",
            "--config",
            str(cfg),
            "--out",
            str(tmp_path / "run"),
            "--set",
            "trainer.max_epochs=1",
            "--set",
            "trainer.progress_bar=false",
            "--set",
            "data.batch_size=32",
        ]
    )
    assert rc == 0
    assert "model written to" in capsys.readouterr().out
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "max_epochs: 1" in saved and "batch_size: 32" in saved
    assert np.isfinite(load_model(tmp_path / "run").normalizer.std_["tas"])


def test_cli_keeps_lightnings_banners_off_the_terminal(archive, tmp_path):
    import subprocess
    import sys

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data:\n  path: {archive}\n  variables: [tas]\nmodel:\n  width: 8\n")
    argv = [sys.executable, "-m", "climatune", "pretrain", "--config", str(cfg)]
    argv += ["--out", str(tmp_path / "run"), "--set", "trainer.max_epochs=1"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "model written to" in done.stdout
    for banner in ("GPU available", "Trainer.fit", "Loading `train_dataloader`"):
        assert banner not in done.stderr


def test_compiled_training_matches_eager_and_writes_the_same_artifact(
    archive, tmp_path, monkeypatch
):
    # Dynamo's "eager" backend traces and guards as inductor does, without minutes of C++
    # code generation on a CPU; the GPU benchmark runs the real thing.
    compile_in_place = torch.nn.Module.compile
    traced = []

    def eager_backend(self, **kwargs):
        traced.append(type(self).__name__)
        compile_in_place(self, backend="eager")

    monkeypatch.setattr(torch.nn.Module, "compile", eager_backend)
    runs = {
        flag: pretrain(
            tiny_config(archive, "trainer.max_epochs=1", f"trainer.compile={flag}"),
            out=tmp_path / flag,
        )
        for flag in ("false", "true")
    }
    eager, compiled = (load_file(str(r / "model" / "weights.safetensors")) for r in runs.values())
    assert traced == ["ClimateNet"] and eager.keys() == compiled.keys()
    for key in eager:
        torch.testing.assert_close(compiled[key], eager[key], atol=1e-4, rtol=1e-3)
    pred = load_model(runs["true"]).predict(open_dataset(archive))
    assert pred.tas.notnull().any()


def test_data_in_memory_never_streams_the_training_split(archive, tmp_path, monkeypatch):
    import climatune.training.datamodule as dm

    streamed = []

    class Spy(dm.TaskStream):
        def __init__(self, view, split, *args, **kwargs):
            streamed.append((split, kwargs["buffer_chunks"]))
            super().__init__(view, split, *args, **kwargs)

    monkeypatch.setattr(dm, "TaskStream", Spy)
    sets = ("trainer.max_epochs=1", "data.in_memory=never", "data.shuffle_buffer_chunks=2")
    run = pretrain(tiny_config(archive, *sets), out=tmp_path / "run")
    assert ("train", 2) in streamed and (run / "model" / "weights.safetensors").exists()


def test_max_steps_that_end_before_validation_still_write_the_model(archive, tmp_path):
    run = pretrain(
        tiny_config(archive, "trainer.max_steps=2", "data.batch_size=4"), out=tmp_path / "run"
    )
    header, *rows = (run / "logs" / "metrics.csv").read_text().splitlines()
    assert "val_loss" not in header  # stopped before any validation
    assert {int(r.split(",")[1]) for r in rows} == {0, 1}
    pred = load_model(run).predict(open_dataset(archive))
    assert np.isfinite(pred.tas.values).any()


def test_a_second_pretrain_into_the_same_out_needs_overwrite(archive, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(tiny_config(archive, "trainer.max_epochs=1").model_dump_json())
    argv = ["pretrain", "--config", str(cfg), "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    first = weights_digest(load_model(tmp_path / "run").net)
    (tmp_path / "run" / "checkpoints" / "stale.ckpt").write_text("from the first run")
    capsys.readouterr()
    assert main([*argv, "--set", "seed=1"]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert weights_digest(load_model(tmp_path / "run").net) == first  # left as it was
    assert main([*argv, "--set", "seed=1", "--overwrite"]) == 0
    assert weights_digest(load_model(tmp_path / "run").net) != first
    assert not (tmp_path / "run" / "checkpoints" / "stale.ckpt").exists()  # replaced, not mixed
    assert "seed: 1" in (tmp_path / "run" / "config.yaml").read_text()
