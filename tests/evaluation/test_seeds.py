"""Ensembles scored seed by seed: ``evaluate --seeds K`` and the members it scores."""

from __future__ import annotations

import json

import numpy as np
import pytest

from climatune import load_model
from climatune.cli import main
from climatune.data.view import build_view
from climatune.evaluation.seeds import summary
from climatune.report.html import write_report
from climatune.testing import tiny_archive, tiny_config
from climatune.training.callbacks import weights_digest
from climatune.workflows.finetuning import finetune
from climatune.workflows.pretraining import pretrain, train_scratch

FAST = ("data.targets=[tas]", "trainer.max_epochs=1", "trainer.limit_train_batches=2")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A pre-trained network; from it a fully fine-tuned 2-member ensemble and the single
    fine-tune of seed 1; a 2-member scratch ensemble and a single scratch network."""
    root = tmp_path_factory.mktemp("seeds")
    archive = tiny_archive(root / "tiny.nc")
    pre = pretrain(tiny_config(archive, *FAST), out=root / "pre")
    cfg = tiny_config(archive, *FAST, "ensemble.members=2")
    ens = finetune(cfg, pre, out=root / "ft", quiet=True)
    one = finetune(tiny_config(archive, *FAST, "seed=1"), pre, out=root / "ft1", quiet=True)
    view = build_view(cfg.data, cfg.task)
    scratch = train_scratch(cfg, view, root / "scratch")
    one_scratch = train_scratch(tiny_config(archive, *FAST), view, root / "scratch1")
    return pre, ens, one, scratch, one_scratch


def test_a_finetuned_member_is_the_single_finetune_of_its_seed(runs):
    """Member k of a fully fine-tuned ensemble is exactly the single fine-tune of seed + k:
    it starts from the pre-trained weights, with the same statistics, and is trained alike."""
    pre, ens, one, _, _ = runs
    model, single = load_model(ens), load_model(one)
    assert model.members == 2
    assert weights_digest(model.member(1).net) == weights_digest(single.net)
    assert weights_digest(model.member(0).net) != weights_digest(single.net)
    assert model.normalizer.to_dict() == single.normalizer.to_dict()
    assert model.meta.data["parent"] == single.meta.data["parent"] == str(load_model(pre).model_dir)


def test_evaluate_seeds_scores_each_member_with_mean_and_spread(runs, tmp_path, capsys):
    _, ens, one, scratch, _ = runs
    out = tmp_path / "e"
    argv = ["evaluate", str(ens), "--baselines", "climatology,ridge", "--scratch", str(scratch)]
    assert main([*argv, "--seeds", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = json.loads((out / "seeds.json").read_text())
    cell = {(r["model"], r["metric"], r.get("reference")): r for r in rows}
    tuned = cell[("finetuned", "rmse", None)]
    # member 1 scores as the single fine-tune of seed 1 does, on the same cells
    alone = tmp_path / "alone"
    assert main(["evaluate", str(one), *argv[2:], "--out", str(alone)]) == 0
    single = json.loads((alone / "metrics.json").read_text())
    rmse_one = next(
        r["value"] for r in single if (r["model"], r["metric"]) == ("finetuned", "rmse")
    )
    assert tuned["values"][1] == pytest.approx(rmse_one, rel=1e-5)
    assert tuned["n_seeds"] == 2 and tuned["values"][0] != tuned["values"][1]
    assert tuned["value"] == pytest.approx(np.mean(tuned["values"]))
    assert tuned["std"] == pytest.approx(np.std(tuned["values"], ddof=1))
    # the ensemble mean is no worse than its average member (RMSE is convex)
    metrics = json.loads((out / "metrics.json").read_text())
    mean_rmse = next(
        r["value"] for r in metrics if (r["model"], r["metric"]) == ("finetuned", "rmse")
    )
    assert mean_rmse <= tuned["value"] + 1e-9
    # the difference with scratch: per seed, and pooled with its interval
    raw = cell[("scratch", "rmse", None)]["values"]
    diff = cell[("finetuned", "rmse_diff", "scratch")]
    assert diff["values"] == pytest.approx([a - b for a, b in zip(tuned["values"], raw)])
    assert diff["ci_low"] <= diff["pooled"] <= diff["ci_high"] and diff["block_length"] >= 1
    assert ("scratch", "rmse_diff", "finetuned") in cell and (
        "finetuned",
        "rmse_diff",
        "ridge",
    ) in cell
    assert "over 2 seeds (members 0–1 of each ensemble scored one by one" in printed
    assert f"finetuned vs scratch: Δ {diff['value']:+.2g}" in printed
    html = write_report(out).read_text()
    assert "Over seeds" in html and "finetuned vs scratch" in html and "pooled Δ" in html


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--seeds", "3"], "has 2 members; train it with ensemble.members=3"),
        (["--seeds", "0"], "--seeds must be an integer from 1 to 64"),
        (["--seeds", "2", "--scratch", "ONE"], "the --scratch model"),
        (
            ["--seeds", "2", "--baselines", "scratch", "--set", "ensemble.members=1"],
            "set ensemble.members=2",
        ),
    ],
)
def test_evaluate_seeds_refuses_networks_with_too_few_members(
    runs, tmp_path, capsys, extra, message
):
    _, ens, _, _, one = runs
    extra = [str(one) if e == "ONE" else e for e in extra]
    out = tmp_path / "e"
    assert main(["evaluate", str(ens), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("climatune: error:") and err.count("\n") == 0 and message in err
    assert not out.exists()


def test_summary_of_one_seed_has_no_spread():
    one = summary([0.5])
    assert one["value"] == 0.5 and one["n_seeds"] == 1 and np.isnan(one["std"])
