"""Deep ensembles: ``ensemble.members`` trains N networks, one artifact holds them all."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from climatune import load_model
from climatune.cli import main
from climatune.config import dump_config, load_config
from climatune.data.io import open_dataset
from climatune.errors import ClimatuneError
from climatune.inference import SCHEMA_VERSION
from climatune.models import EnsembleNet
from climatune.testing import tiny_archive, tiny_config
from climatune.training.callbacks import weights_digest
from climatune.workflows.finetuning import finetune
from climatune.workflows.pretraining import pretrain

FAST = ("trainer.max_epochs=1", "trainer.limit_train_batches=2", "model.dropout=0.1")
V1 = Path(__file__).resolve().parents[1] / "fixtures" / "artifact_v1" / "model"


def _backbone(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in net.state_dict().items() if k.startswith("backbone.")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 2-member pre-trained ensemble (seeds 0, 1) and a single network of seed 1."""
    root = tmp_path_factory.mktemp("ensemble")
    archive = tiny_archive(root / "tiny.nc")
    ens = pretrain(tiny_config(archive, *FAST, "ensemble.members=2"), out=root / "ens")
    single = pretrain(tiny_config(archive, *FAST, "seed=1"), out=root / "single")
    return archive, ens, single


def test_one_artifact_holds_every_member(runs):
    _, ens, _ = runs
    meta = json.loads((ens / "model" / "climatune.json").read_text())
    assert meta["schema_version"] == SCHEMA_VERSION == 3 and meta["members"] == 2
    assert meta["config"]["ensemble"] == {"members": 2} and meta["config"]["seed"] == 0
    tensors = load_file(str(ens / "model" / "weights.safetensors"))
    first = {k for k in tensors if not k.startswith("member.") and k != "__static__"}
    second = {k.removeprefix("member.1.") for k in tensors if k.startswith("member.1.")}
    assert first == second and len(first) > 0
    for k in (0, 1):  # each member trains in its own folder
        assert (ens / "members" / str(k) / "checkpoints" / "last.ckpt").exists()
        assert (ens / "members" / str(k) / "logs" / "metrics.csv").exists()
    assert not (ens / "checkpoints").exists()


def test_member_k_is_the_single_network_of_seed_plus_k(runs):
    _, ens, single = runs
    model = load_model(ens)
    assert model.members == 2 and isinstance(model.net, EnsembleNet)
    one = load_model(single)
    assert one.members == 1
    assert weights_digest(model.member(1).net) == weights_digest(one.net)
    assert weights_digest(model.member(0).net) != weights_digest(one.net)


def test_the_prediction_is_the_members_mean(runs):
    archive, ens, _ = runs
    model = load_model(ens)
    ds = open_dataset(archive)
    each = model.predict(ds, members=True)
    assert each.tas.dims == ("member", "time", "lat", "lon") and each.sizes["member"] == 2
    assert list(each.member.values) == [0, 1]
    spread = float(abs(each.tas.isel(member=0) - each.tas.isel(member=1)).mean())
    assert spread > 1e-3
    mean = model.predict(ds)
    assert "member" not in mean.dims
    np.testing.assert_allclose(each.tas.mean("member"), mean.tas, rtol=0, atol=1e-3)
    first = model.member(0).predict(ds)
    np.testing.assert_allclose(each.tas.isel(member=0), first.tas, rtol=0, atol=1e-4)


def test_old_single_network_artifacts_load_as_one_member():
    old = load_model(V1)
    assert old.members == 1 and old.meta.members == 1
    assert old.meta.data["schema_version"] == SCHEMA_VERSION


def test_finetuned_members_start_from_the_parents_one_to_one(runs, tmp_path):
    archive, ens, _ = runs
    cfg = tiny_config(
        archive, *FAST, "ensemble.members=2", "data.targets=[tas]", "finetune.strategy=linear_probe"
    )
    run = finetune(cfg, ens, out=tmp_path / "ft", quiet=True)
    parent, child = load_model(ens), load_model(run)
    assert child.members == 2
    assert child.meta.data["parent"] == str(parent.model_dir)
    for k in (0, 1):  # the backbone is frozen: each member keeps its parent's
        mine, theirs = _backbone(child.member(k).net), _backbone(parent.member(k).net)
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[n], theirs[n]) for n in mine)
    assert not torch.equal(
        next(iter(_backbone(child.member(0).net).values())),
        next(iter(_backbone(child.member(1).net).values())),
    )


def test_finetuned_members_of_one_parent_all_start_from_it(runs, tmp_path):
    archive, _, single = runs
    cfg = tiny_config(
        archive, *FAST, "ensemble.members=2", "data.targets=[tas]", "finetune.strategy=linear_probe"
    )
    child = load_model(finetune(cfg, single, out=tmp_path / "ft", quiet=True))
    parent = _backbone(load_model(single).net)
    heads = []
    for k in (0, 1):
        mine = _backbone(child.member(k).net)
        assert all(torch.equal(mine[n], parent[n]) for n in parent)
        heads.append(weights_digest(child.member(k).net.head))
    assert heads[0] != heads[1]  # new heads drawn from seed + k


def test_a_member_count_that_does_not_match_the_parent_ensemble_is_one_line(runs, tmp_path, capsys):
    archive, ens, _ = runs
    out, config = tmp_path / "ft", tmp_path / "ft.yaml"
    config.write_text(dump_config(tiny_config(archive, *FAST, "data.targets=[tas]")))
    argv = ["finetune", "--config", str(config), "--from", str(ens), "--out", str(out)]
    argv += ["--set", "ensemble.members=3"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "an ensemble of 2 members" in err and "ensemble.members=2" in err
    assert not out.exists()


@pytest.mark.parametrize("members", [0, 65, "two"])
def test_the_member_count_is_validated(members):
    with pytest.raises(ClimatuneError, match="ensemble.members"):
        load_config(None, [f"ensemble.members={members}"])


def test_an_ensemble_run_is_not_resumed(runs, tmp_path):
    archive, ens, _ = runs
    cfg = tiny_config(archive, *FAST, "ensemble.members=2")
    with pytest.raises(ClimatuneError, match="cannot resume an ensemble"):
        pretrain(cfg, resume=ens)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda meta, w: meta.update(members=3), "do not match its architecture"),
        (lambda meta, w: meta.update(members="2"), "field 'members' must be a whole number"),
        (lambda meta, w: meta.update(members=1), "holds"),
        (
            lambda meta, w: [w.pop(k) for k in list(w) if k.startswith("member.1.")],
            "do not match its architecture",
        ),
    ],
)
def test_an_artifact_whose_members_do_not_add_up_is_refused(runs, tmp_path, change, message):
    _, ens, _ = runs
    broken = tmp_path / "model"
    shutil.copytree(ens / "model", broken)
    meta = json.loads((broken / "climatune.json").read_text())
    weights = load_file(str(broken / "weights.safetensors"))
    change(meta, weights)
    (broken / "climatune.json").write_text(json.dumps(meta))
    save_file(weights, str(broken / "weights.safetensors"))
    with pytest.raises(ClimatuneError, match=message):
        load_model(broken)
