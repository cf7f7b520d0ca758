"""Skill against the climatology and damped persistence, and the plain verdict of a useless network."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from climatune.evaluation.metrics import score
from climatune.report import skill, tables
from climatune.report.html import write_report

PLAIN = "worse than climatology: not useful at this lead"


def _rows(rmse: dict[str, float], variable: str = "tas") -> list[dict]:
    return [
        {"model": m, "task": "forecast", "variable": variable, "metric": "rmse", "value": v}
        | {"split": "test"}
        for m, v in rmse.items()
    ]


def test_skill_equals_the_hand_computed_mse_ratio() -> None:
    """Skill from the scored RMSEs equals 1 - MSE_model / MSE_reference computed by hand,
    with cos(latitude) weights, over every time and cell."""
    rng = np.random.default_rng(3)
    lat, lon = np.array([-40.0, 0.0, 35.0, 60.0]), np.arange(0.0, 360.0, 60.0)
    shape = (12, lat.size, lon.size)
    coords = {"time": np.arange(12), "lat": lat, "lon": lon}

    def field(values: np.ndarray) -> xr.Dataset:
        return xr.Dataset({"tas": (("time", "lat", "lon"), values)}, coords=coords)

    truth = rng.normal(0.0, 2.0, shape)
    preds = {
        "finetuned": truth + rng.normal(0.0, 1.0, shape),
        "scratch": truth + rng.normal(0.3, 2.5, shape),
        "climatology": np.zeros(shape),
        "damped_persistence": 0.5 * truth + rng.normal(0.0, 1.2, shape),
    }
    rows = []
    for name, values in preds.items():
        rows += score(field(values), field(truth), model=name, task="forecast")
    table = tables.metric_table(rows)
    assert table is not None
    got = skill.network_skills(tables.table_rmse(table, "tas"), tables.NETWORKS)

    w = np.broadcast_to(np.cos(np.deg2rad(lat))[None, :, None], shape)

    def mse(values: np.ndarray) -> float:
        return float((w * (values - truth) ** 2).sum() / w.sum())

    assert set(got) == {"finetuned", "scratch"}
    for net in got:
        for ref in ("climatology", "damped_persistence"):
            expected = 1.0 - mse(preds[net]) / mse(preds[ref])
            assert got[net][ref] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert got["finetuned"]["climatology"] > 0.5 and got["scratch"]["climatology"] < 0


@pytest.mark.parametrize(
    ("model", "ref", "expected"),
    [
        (0.6, 0.5, 1 - 0.36 / 0.25),
        (0.4, 0.8, 0.75),
        (1.0, 0.0, math.nan),
        (math.nan, 1.0, math.nan),
    ],
)
def test_skill_against(model: float, ref: float, expected: float) -> None:
    assert skill.skill_against(model, ref) == pytest.approx(expected, nan_ok=True)


def test_a_network_worse_than_climatology_gets_the_plain_verdict() -> None:
    """It beats scratch, damped persistence and persistence, and is still called useless."""
    rmse = {
        "finetuned": 1.2,
        "scratch": 1.5,
        "climatology": 1.1,
        "damped_persistence": 1.3,
        "persistence": 1.6,
    }
    table = tables.metric_table(_rows(rmse))
    assert table is not None
    text, wins = tables.verdict(table, "tas", "K", lead=1)
    assert text.startswith(f"finetuned: tas RMSE 1.2 K — {PLAIN}, whatever else it beats; ")
    assert "beats scratch (1.5) and 2 of 3 baselines" in text
    # 1 - (1.2/1.1)**2 = -0.19; 1 - (1.2/1.3)**2 = 0.148
    assert text.endswith(
        "skill at lead 1: -0.19 against climatology, 0.15 against damped persistence"
    )
    assert wins is False

    lines = tables.verdicts(_rows(rmse), {"tas": "K"}, lead=1)
    assert lines[1:] == [
        "tas skill at lead 1 (1 - MSE/MSE_reference):",
        f"  finetuned: -0.19 against climatology, 0.15 against damped persistence — {PLAIN}",
        f"  scratch: -0.86 against climatology, -0.33 against damped persistence — {PLAIN}",
    ]


def test_a_useful_network_gets_no_plain_verdict() -> None:
    rmse = {"finetuned": 0.9, "scratch": 1.2, "climatology": 1.0, "damped_persistence": 0.95}
    text, wins = tables.verdict(tables.metric_table(_rows(rmse)), "tas", "K")  # type: ignore[arg-type]
    assert "not useful" not in text and wins is True
    assert text.endswith("skill 0.19 against climatology, 0.1 against damped persistence")
    lines = skill.skill_lines(rmse, "tas", lead=2)
    assert lines[1] == "  finetuned: 0.19 against climatology, 0.1 against damped persistence"
    assert lines[2].endswith(f"— {PLAIN}")  # scratch: 1 - 1.44 = -0.44
    # no reference scored: nothing to say
    assert skill.skill_lines({"finetuned": 0.9, "ridge": 1.0}, "tas") == []


def test_equal_to_climatology_is_no_better(tmp_path: Path) -> None:
    assert skill.usefulness({"climatology": 0.0}) == (
        "no better than climatology: not useful at this lead"
    )
    assert skill.usefulness({"damped_persistence": -1.0}) is None
    assert skill.usefulness({"climatology": 0.01}) is None


def test_report_shows_each_networks_skill_at_the_runs_lead(tmp_path: Path) -> None:
    rmse = {"finetuned": 0.8, "scratch": 1.1, "climatology": 1.0, "damped_persistence": 0.9}
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "metrics.json").write_text(json.dumps(_rows(rmse)))
    run = tmp_path / "finetune"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"task": {"kind": "forecast", "lead": 3}}))
    text = write_report(tmp_path).read_text()
    assert "tas: skill at lead 3 of each network" in text
    # finetuned 1 - 0.64 = 0.36 and 1 - 0.64/0.81 = 0.21; scratch 1 - 1.21 = -0.21, -0.49
    assert "<td>0.36</td><td>0.21</td><td>beats climatology</td>" in text
    assert f'<td>-0.21</td><td>-0.49</td><td class="bad">{PLAIN}</td>' in text
