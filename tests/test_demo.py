"""The demo, end to end, on the bundled real GCM data (``--fast`` budget)."""

from __future__ import annotations

import json

import pytest

from climatune.cli import main
from climatune.evaluation.baselines import baselines_for


@pytest.mark.slow
def test_fast_demo_writes_every_output(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--fast"]) == 0
    for run in ("pretrain", "finetune", "scratch"):
        assert (out / run / "model" / "weights.safetensors").exists()
    members = {
        r: json.loads((out / r / "model" / "climatune.json").read_text())["members"]
        for r in ("pretrain", "finetune", "scratch")
    }
    assert members == {"pretrain": 1, "finetune": 2, "scratch": 2}  # --fast: 2 members
    rows = json.loads((out / "metrics.json").read_text())
    rmse = {r["model"]: r["value"] for r in rows if r["metric"] == "rmse" and r["split"] == "test"}
    assert {"finetuned", "scratch", *baselines_for("downscale")} <= set(rmse)
    assert all(0 < v < 5 for v in rmse.values())  # kelvin
    diff = next(r for r in rows if r["metric"] == "rmse_diff" and r["reference"] == "scratch")
    assert diff["model"] == "finetuned" and diff["n_times"] == 30  # test years 2070-2099
    assert diff["value"] == pytest.approx(rmse["finetuned"] - rmse["scratch"])
    assert diff["ci_low"] <= diff["value"] <= diff["ci_high"] and diff["block_length"] >= 3
    crps = {r["model"]: r["value"] for r in rows if r["metric"] == "crps"}
    assert {"finetuned", "scratch", "climatological_ensemble", "ridge_dressed"} <= set(crps)
    assert all(0 < v < 5 for v in crps.values())
    crps_diff = {r["model"]: r for r in rows if r["metric"] == "crps_diff"}
    assert set(crps_diff) == {"finetuned", "finetuned_dressed", "scratch", "scratch_dressed"}
    best = crps_diff["finetuned"]["reference"]
    baselines = {m: v for m, v in crps.items() if m not in crps_diff}
    assert best == min(baselines, key=baselines.__getitem__)
    assert crps_diff["finetuned"]["value"] == pytest.approx(crps["finetuned"] - crps[best])
    seeds = json.loads((out / "seeds.json").read_text())
    tuned = next(r for r in seeds if (r["model"], r["metric"]) == ("finetuned", "rmse"))
    assert (
        tuned["n_seeds"] == 2 and rmse["finetuned"] <= tuned["value"] + 1e-9
    )  # mean beats members on average
    printed = capsys.readouterr()
    assert "finetuned ensemble: CRPS" in printed.err and "over 2 seeds" in printed.err
    line = f"vs scratch: Δ {diff['value']:+.2g} K, 95 % CI [{diff['ci_low']:+.2g}, "
    assert line in printed.err and f"block {diff['block_length']}" in printed.err
    assert str(out / "report.html") in printed.out
    curve = json.loads((out / "curve.json").read_text())
    fractions = {r["fraction"] for r in curve}
    assert len(fractions) >= 2 and {r["model"] for r in curve} == {"finetuned", "scratch"}
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "bilinear_residual" in html
    assert "RMSE minus theirs, with its interval from a paired circular block" in html
    assert "95 % interval of the gap by a paired block bootstrap" in html
    # the fine-tuned model is explained, and the report shows it
    assert (out / "explain" / "attributions.nc").exists()
    assert "Attribution maps: explain/attributions.nc" in html
    assert "Interaction matrix: share of |attribution|" in html
    assert "Output × climate component" in html and "2 members (deep ensemble, seeds 0–1)" in html
    assert "Probabilistic scores" in html and "Over seeds" in html
    assert "Δ CRPS [K] against the best baseline" in html
    capsys.readouterr()
    assert main(["demo", "--out", str(out), "--fast"]) == 2  # a second run replaces nothing
    assert "pass --overwrite to replace it" in capsys.readouterr().err
    assert (out / "report.html").read_text() == html
