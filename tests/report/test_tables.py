"""The report and the printed verdicts show each comparison's bootstrap interval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from climatune.report import tables
from climatune.report.html import write_report

RMSE = {"finetuned": 0.321, "scratch": 0.339, "bilinear_residual": 0.35, "climatology": 0.9}
# (finetuned minus reference: low, high, block): the gain on scratch covers zero.
CI = {
    "scratch": (-0.041, 0.004, 3),
    "bilinear_residual": (-0.05, -0.008, 4),
    "climatology": (-0.7, -0.46, 3),
}


def _rows(ci: dict[str, tuple[float, float, int]] = CI) -> list[dict]:
    rows = [
        {"model": m, "task": "downscale", "variable": "tas", "metric": "rmse", "value": v}
        | {"split": "test"}
        for m, v in RMSE.items()
    ]
    for ref, (low, high, block) in ci.items():
        rows.append(
            {"model": "finetuned", "task": "downscale", "variable": "tas", "metric": "rmse_diff"}
            | {"value": RMSE["finetuned"] - RMSE[ref], "split": "test", "reference": ref}
            | {"ci_low": low, "ci_high": high, "level": 0.95, "block_length": block}
            | {"n_times": 30, "seed": 0}
        )
    return rows


def test_verdict_names_each_interval_and_a_doubtful_win_is_no_win() -> None:
    table = tables.metric_table(_rows())
    assert table is not None and table.columns == [("tas", "rmse")]  # no rmse_diff column
    text, wins = tables.verdict(table, "tas", "K")
    assert text == (
        "finetuned: tas RMSE 0.321 K — beats scratch (0.339; Δ -0.018 K, 95 % CI [-0.041, "
        "+0.004], block 3, not significant) and all 2 baselines (closest: bilinear_residual "
        "0.35; Δ -0.029 K, 95 % CI [-0.05, -0.008], block 4); skill 0.87 against climatology; "
        "Δ = finetuned RMSE minus theirs, with its interval from a paired circular block "
        "bootstrap over 30 test times"
    )
    assert wins is False
    sure = tables.metric_table(_rows(CI | {"scratch": (-0.03, -0.006, 3)}))
    assert sure is not None
    text, wins = tables.verdict(sure, "tas", "K")
    assert "block 3)" in text and "not significant" not in text and wins is True


def test_verdict_says_which_other_gain_is_not_significant() -> None:
    ci = {"scratch": (-0.03, -0.006, 3), "climatology": (-0.7, 0.05, 3)}
    table = tables.metric_table(_rows(CI | ci))
    assert table is not None
    text, wins = tables.verdict(table, "tas", "K")
    assert "; the gain on climatology is not significant;" in text and wins is False
    pair = [r for r in _rows({"scratch": (-0.04, 0.01, 3)}) if "scratch" in r.values()]
    only_scratch = tables.metric_table([_rows()[0], *pair])
    assert only_scratch is not None
    text, wins = tables.verdict(only_scratch, "tas", "K")
    assert "block 3, not significant); no baselines were scored" in text and wins is False


def test_verdict_gives_the_interval_of_a_loss() -> None:
    rows = _rows({"scratch": (0.01, 0.05, 2)})
    rows[1]["value"] = 0.3  # scratch now wins
    rows[-1]["value"] = 0.021
    table = tables.metric_table(rows)
    assert table is not None
    text, wins = tables.verdict(table, "tas", "K")
    assert "loses to scratch (0.3; Δ +0.021 K, 95 % CI [+0.01, +0.05], block 2)" in text
    assert wins is False


def test_verdicts_print_one_line_per_comparison() -> None:
    lines = tables.verdicts(_rows(), {"tas": "K"})
    assert lines[0].startswith("finetuned: tas RMSE 0.321 K — beats scratch (0.339; Δ -0.018 K")
    assert lines[1:4] == [
        "  vs climatology: Δ -0.58 K, 95 % CI [-0.7, -0.46], block 3",
        "  vs bilinear_residual: Δ -0.029 K, 95 % CI [-0.05, -0.008], block 4",
        "  vs scratch: Δ -0.018 K, 95 % CI [-0.041, +0.004], block 3, not significant",
    ]
    # then every network's skill: 1 - (0.321 / 0.9)**2 = 0.873, 1 - (0.339 / 0.9)**2 = 0.858
    assert lines[4:] == [
        "tas skill (1 - MSE/MSE_reference):",
        "  finetuned: 0.87 against climatology",
        "  scratch: 0.86 against climatology",
    ]


def test_report_shows_the_intervals_and_the_curve_gap_interval(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text(json.dumps(_rows()))
    curve = []
    for frac, n, ft, sc, (low, high) in (
        (0.5, 50, 0.36, 0.40, (-0.07, -0.01)),
        (1.0, 100, 0.321, 0.339, (-0.041, 0.004)),
    ):
        for model, value in (("finetuned", ft), ("scratch", sc)):
            curve.append(
                {"fraction": frac, "n_train": n, "model": model, "variable": "tas"}
                | {"metric": "rmse", "value": value}
            )
        curve.append(
            {
                "fraction": frac,
                "n_train": n,
                "model": "finetuned",
                "variable": "tas",
                "metric": "rmse_diff",
            }
            | {"value": ft - sc, "reference": "scratch", "ci_low": low, "ci_high": high}
            | {"level": 0.95, "block_length": 3, "n_times": 30, "seed": 0}
        )
    (tmp_path / "curve.json").write_text(json.dumps(curve))
    text = write_report(tmp_path).read_text()
    assert "block 3, not significant) and all 2 baselines" in text  # the verdict
    assert "paired circular block bootstrap over 30 test times, block length from the lag-1" in text
    assert '<td>[-0.041, +0.004]</td><td>3</td><td class="bad">not significant</td>' in text
    assert "<td>[-0.05, -0.008]</td><td>4</td><td>yes</td>" in text
    assert "fine-tuning beats scratch at 2 of 2 fractions, significantly at 1 of 2" in text
    assert "<td>[+0.01, +0.07]</td><td>3</td>" in text
    assert '<td class="bad">[-0.004, +0.041] not significant</td>' in text


def test_interval_text_uses_the_digits_that_tell_the_bounds_apart() -> None:
    tight = {"value": -1.12, "ci_low": -1.14, "ci_high": -1.1, "level": 0.95, "block_length": 3}
    assert tables.interval_text(tight, "K") == "Δ -1.12 K, 95 % CI [-1.14, -1.1], block 3"


@pytest.mark.parametrize("value", [None, "x"])
def test_an_unreadable_interval_is_left_out(value: object) -> None:
    assert tables.interval_text({"value": -0.1, "ci_low": value, "ci_high": 0.2}) == ""
