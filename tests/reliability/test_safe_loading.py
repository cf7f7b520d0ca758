"""Loading never runs code from a file: pickles, hostile JSON and YAML tags are refused.

Each payload would create a marker file if it were ever unpickled or constructed; the
tests first prove that (so they cannot pass vacuously), then check that ClimaTune refuses
the file with one ``climatune: error:`` line and that the marker never appears.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from climatune import load_model
from climatune.cli import main
from climatune.errors import ClimatuneError
from climatune.utils.atomic import STAMP
from tests.reliability.conftest import tree


class Payload:
    """Unpickling this calls ``open(marker, "w")``: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _poison(path: Path, marker: Path, **extra) -> Path:
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": Payload(marker), **extra}, path)
    return path


def _run(argv: list[str], capsys) -> str:
    capsys.readouterr()
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, err
    assert (
        err.startswith("climatune: error: ") and err.count("\n") == 1 and "Traceback" not in err
    ), err
    return err


@pytest.fixture
def run(shared, tmp_path) -> Path:
    """A private copy of the shared pretrained run (model, checkpoints, config)."""
    return Path(shutil.copytree(shared["model"], tmp_path / "run"))


def test_the_payload_is_live(tmp_path):
    marker = tmp_path / "pwned"
    path = _poison(tmp_path / "evil.pt", marker)
    torch.load(path, weights_only=False)  # what ClimaTune must never do
    assert marker.exists()


def test_pickle_in_place_of_safetensors_is_refused(run, tmp_path, capsys, shared):
    marker = tmp_path / "pwned"
    _poison(run / "model" / "weights.safetensors", marker)
    with pytest.raises(ClimatuneError, match="not a valid safetensors file"):
        load_model(run)
    err = _run(
        [
            "predict",
            str(run),
            "--input",
            str(shared["archive"]),
            "--output",
            str(tmp_path / "p.nc"),
        ],
        capsys,
    )
    assert "refusing to load it" in err
    assert not marker.exists() and not (tmp_path / "p.nc").exists()


@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_malicious_resume_checkpoint_is_refused(command, run, tmp_path, capsys, shared):
    marker = tmp_path / "pwned"
    _poison(run / "checkpoints" / "last.ckpt", marker, epoch=0, global_step=1)
    (run / STAMP).write_text(json.dumps({"command": command}))  # a run of this command
    before = tree(run)
    argv = [command, "--config", str(shared["config"]), "--resume", str(run)]
    if command == "finetune":
        argv += ["--from", str(shared["model"])]
    err = _run(argv, capsys)
    assert "cannot resume from" in err and "safe checkpoint" in err
    assert not marker.exists()
    assert tree(run) == before  # nothing rewritten, not even config.yaml


def test_truncated_resume_checkpoint_is_refused(run, capsys, shared):
    ckpt = run / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    err = _run(["pretrain", "--config", str(shared["config"]), "--resume", str(run)], capsys)
    assert "cannot resume from" in err


_HOSTILE = {
    "extra-field": (
        lambda m: m.update(exec="__import__('os').system('id')"),
        "unexpected fields ['exec']",
    ),
    "future-schema": (lambda m: m.update(schema_version=99), "upgrade climatune"),
    "unknown-backbone": (
        lambda m: m["architecture"].update(backbone="os.system"),
        "unknown backbone 'os.system'",
    ),
    "backbone-option": (
        lambda m: m["architecture"]["backbone_kwargs"].update(__class__="x"),
        "no option '__class__'",
    ),
    "config-key": (lambda m: m["config"].update(evil=1), "unknown config key 'evil'"),
    "inputs-not-records": (lambda m: m.update(inputs="tas"), "field 'inputs'"),
    "no-outputs": (lambda m: m.update(outputs=[]), "field 'outputs'"),
    "task-kind": (lambda m: m["task"].update(kind="rm -rf"), "field 'task'"),
    "grid-values": (lambda m: m["grid"].update(lat="0..90"), "field 'grid'"),
    "static-scale-zero-std": (
        lambda m: m.update(static_scale={"orog": [100.0, 0.0]}),
        "field 'static_scale'",
    ),
    "position-wavelengths": (
        lambda m: m.update(position_wavelengths=[10, -5]),
        "field 'position_wavelengths'",
    ),
    "position-wavelengths-infinite": (  # json writes Infinity, which json reads back
        lambda m: m.update(position_wavelengths=[float("inf")]),
        "field 'position_wavelengths'",
    ),
    "position-wavelengths-unnamed": (  # not those of the static channels
        lambda m: m.update(position_wavelengths=[40]),
        "must be those of the static channels",
    ),
    "residual-out-of-range": (
        lambda m: m["architecture"].update(residual_index=[99, 99]),
        "field 'residual_index'",
    ),
    "normalization": (lambda m: m.update(normalization={"x": 1}), "normalisation statistics"),
    "not-an-object": (lambda m: [m], "must hold a JSON object"),
}


@pytest.mark.parametrize("name", list(_HOSTILE))
def test_hostile_metadata_is_refused(name, run, tmp_path, capsys, shared):
    change, expect = _HOSTILE[name]
    meta_path = run / "model" / "climatune.json"
    meta = json.loads(meta_path.read_text())
    meta = change(meta) or meta
    meta_path.write_text(json.dumps(meta))
    output = tmp_path / "p.nc"
    err = _run(
        ["predict", str(run), "--input", str(shared["archive"]), "--output", str(output)], capsys
    )
    assert expect in err
    assert not output.exists()


_TAG = "!!python/object/apply:builtins.open [{marker}, w]"


def test_yaml_config_uses_a_safe_loader(tmp_path, capsys):
    marker = tmp_path / "pwned"
    import yaml

    with pytest.raises(yaml.YAMLError):  # the tag means code; a safe loader refuses it
        yaml.safe_load(_TAG.format(marker=marker))
    assert yaml.unsafe_load(_TAG.format(marker=marker)) and marker.exists()  # the tag is live
    marker.unlink()
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"seed: 0\ntrainer:\n  max_epochs: {_TAG.format(marker=marker)}\n")
    err = _run(["pretrain", "--config", str(cfg), "--out", str(tmp_path / "run")], capsys)
    assert "not valid YAML at line 3" in err
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_set_overrides_and_tune_spaces_use_a_safe_loader(tmp_path, capsys, shared):
    marker = tmp_path / "pwned"
    tag = _TAG.format(marker=marker)
    _run(
        [
            "pretrain",
            "--config",
            str(shared["config"]),
            "--set",
            f"seed={tag}",
            "--out",
            str(tmp_path / "run"),
        ],
        capsys,
    )
    space = tmp_path / "space.yaml"
    space.write_text(f"optim.lr: {tag}\n")
    err = _run(
        [
            "tune",
            "--config",
            str(shared["config"]),
            "--space",
            str(space),
            "--out",
            str(tmp_path / "tune"),
        ],
        capsys,
    )
    assert "not valid YAML" in err
    assert (
        not marker.exists() and not (tmp_path / "run").exists() and not (tmp_path / "tune").exists()
    )


def test_pickle_module_is_not_what_loads_artifacts(run, monkeypatch, shared, tmp_path):
    """Loading a model and predicting never reaches pickle (safetensors + JSON only)."""

    def refuse(*args, **kwargs):
        raise AssertionError("pickle was used to load an artifact")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    model = load_model(run)
    assert model.meta.outputs == ["tas", "sst"]
