"""The report of ensembles: their member count, the scores over seeds, the explanation."""

from __future__ import annotations

import json
import re
from pathlib import Path

from climatune.report.html import write_report
from climatune.report.seeds import seed_lines

from .conftest import _losses, make_demo_dir


def _seed_rows() -> list[dict]:
    base = {"task": "downscale", "variable": "tas", "split": "test", "n_seeds": 3}
    return [
        {**base, "model": "finetuned", "metric": "rmse", "value": 0.32, "std": 0.01, "values": [0.31, 0.32, 0.33]},
        {**base, "model": "scratch", "metric": "rmse", "value": 0.34, "std": 0.02, "values": [0.32, 0.34, 0.36]},
        {**base, "model": "finetuned", "metric": "rmse_diff", "reference": "scratch", "value": -0.02,
         "std": 0.01, "values": [-0.01, -0.02, -0.03], "pooled": -0.021, "ci_low": -0.04,
         "ci_high": -0.002, "level": 0.95, "block_length": 3, "n_times": 30},
        {**base, "model": "finetuned", "metric": "rmse_diff", "reference": "ridge", "value": -0.005,
         "std": 0.01, "values": [0.005, -0.005, -0.015], "pooled": -0.005, "ci_low": -0.02,
         "ci_high": 0.01, "level": 0.95, "block_length": 4, "n_times": 30},
    ]  # fmt: skip


def test_seed_lines_give_mean_spread_and_pooled_interval():
    lines = seed_lines(_seed_rows(), {"tas": "K"})
    assert lines[0].startswith("over 3 seeds (members 0–2 of each ensemble scored one by one")
    assert "  finetuned: tas RMSE 0.32 ± 0.01 K (seeds: 0.31, 0.32, 0.33)" in lines
    scratch = next(line for line in lines if "finetuned vs scratch" in line)
    assert (
        "Δ -0.02 ± 0.01 K" in scratch and "95 % CI [-0.04, -0.002], block 3, significant" in scratch
    )
    ridge = next(line for line in lines if "finetuned vs ridge" in line)
    assert ridge.endswith("block 4, not significant")
    assert lines.index(scratch) < lines.index(ridge)  # the other network first
    assert seed_lines([{"model": "x"}], {}) == []


def test_report_shows_the_ensemble_the_seeds_and_the_explanation(tmp_path: Path):
    root = make_demo_dir(tmp_path / "demo")
    meta_path = root / "finetune" / "model" / "climatune.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "members": 3, "config": {"seed": 4}}))
    for k in range(3):  # a member's folder holds only its log
        _losses(root / "finetune" / "members" / str(k) / "logs" / "metrics.csv", 3, 2.0)
    (root / "seeds.json").write_text(json.dumps(_seed_rows()))
    shares = {"tas": {"samples": 16, "variables": {"tas": 0.75, "sst": 0.25},
                      "components": {"atmosphere": 0.75, "ocean": 0.25}}}  # fmt: skip
    (root / "explain" / "interactions.json").write_text(
        json.dumps({"method": "ig", "components_of": {"sst": "ocean"}, "targets": shares})
    )
    html = write_report(root).read_text()
    runs = re.search(r"<h3>Runs</h3>(.*?)</table>", html, re.S)
    assert runs and "finetune/members/0" not in runs.group(1)
    assert '<th class="l">members</th>' in runs.group(1) and '"w">3</td>' in runs.group(1)
    assert "3 members (deep ensemble, seeds 4–6)" in html
    assert "finetune/members/2" in html  # each member's training curve is still drawn
    assert '<section id="seeds"><h2>Over seeds</h2>' in html
    assert "finetuned vs scratch" in html and "not significant" in html
    assert "Output × climate component" in html and "Output × input variable" in html
    assert '<td class="best">75.0%</td>' in html and "<pre>{" not in html
