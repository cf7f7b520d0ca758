"""A fake demo directory with every part the report reads, written without training anything."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from matplotlib.figure import Figure

# Test RMSE of tas in K: bilinear_residual beats the fine-tuned model, which beats the rest.
RMSE = {
    "finetuned": 0.31,
    "scratch": 0.36,
    "bilinear_residual": 0.28,
    "bilinear": 0.52,
    "climatology": 0.90,
    "persistence": 0.71,
    "recent_mean": 0.66,
    "linear_trend": 0.80,
    "ridge": 0.45,
}
# Bias: scratch has the smallest |bias| although its bias is negative.
BIAS = {m: 0.05 + 0.01 * i for i, m in enumerate(RMSE)} | {"scratch": -0.02}
ACC = {m: 0.5 + 0.01 * i for i, m in enumerate(RMSE)} | {"finetuned": 0.97}
LAT = [30.0 + 1.25 * i for i in range(4)]
LON = [235.0 + 1.875 * i for i in range(8)]


def _tiny_png(path: Path, title: str = "") -> Path:
    """A real, small PNG written by matplotlib."""
    fig = Figure(figsize=(2.4, 1.2))
    ax = fig.subplots()
    ax.plot([0, 1, 2], [0, 1, 0])
    ax.set_title(title, fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=50)
    return path


def metric_rows() -> list[dict]:
    rows = []
    for model, value in RMSE.items():
        for metric, v in (
            ("rmse", value),
            ("mae", 0.8 * value),
            ("bias", BIAS[model]),
            ("acc", ACC[model]),
        ):
            rows.append(
                {
                    "model": model,
                    "task": "downscale",
                    "variable": "tas",
                    "metric": metric,
                    "value": v,
                    "split": "test",
                }
            )
    rows.append(
        {
            "model": "finetuned",
            "task": "downscale",
            "variable": "tas",
            "metric": "rmse",
            "value": 0.01,
            "split": "val",
        }
    )
    return rows


def _meta(name: str, parent: str | None, data: str) -> dict:
    return {
        "schema_version": 1,
        "task": {"kind": "downscale", "history": 1, "lead": 0, "factor": 4},
        "inputs": [{"name": "tas", "units": "K", "standard_name": "air_temperature"}],
        "outputs": [{"name": "tas", "units": "K", "standard_name": "air_temperature"}],
        "grid": {"lat": LAT, "lon": LON, "calendar": "360_day"},
        "provenance": {
            "data": data,
            "blocks": {"train": [1860, 1959], "val": [1961, 1979], "test": [1981, 1999]},
            "n_samples": {"train": 100, "val": 19, "test": 19},
            "time_range": ["1860-06-01 00:00:00", "1999-06-01 00:00:00"],
        },
        "parent": parent,
        "config": {
            "task": {"kind": "downscale"},
            "model": {"backbone": "unet", "width": 16, "depth": 2},
            "run": name,
        },
    }


def _losses(path: Path, epochs: int, scale: float) -> None:
    lines = ["epoch,step,train_loss_epoch,train_loss_step,val_loss"]
    for e in range(epochs):
        lines.append(f"{e},{3 * e},,{scale / (e + 1) + 0.05},")
        lines.append(f"{e},{3 * e + 2},,,{scale / (e + 1.5)}")
        lines.append(f"{e},{3 * e + 2},{scale / (e + 1)},,")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def make_demo_dir(root: Path) -> Path:
    """``root`` laid out like ``climatune demo``: three runs, metrics, maps, curve, explain, tune."""
    for name, parent, data, epochs in (
        ("pretrain", None, "sample://A1B_north_america", 4),
        ("finetune", str(root / "pretrain" / "model"), "sample://E1_north_america", 3),
        ("scratch", None, "sample://E1_north_america", 5),
    ):
        run = root / name
        (run / "model").mkdir(parents=True)
        (run / "model" / "climatune.json").write_text(json.dumps(_meta(name, parent, data)))
        (run / "config.yaml").write_text(
            yaml.safe_dump({"task": {"kind": "downscale"}, "data": {"path": data}})
        )
        _losses(run / "logs" / "metrics.csv", epochs, 1.0 + epochs)
    (root / "metrics.json").write_text(json.dumps(metric_rows()))
    _tiny_png(root / "map_finetuned_tas.png", "finetuned tas")
    _tiny_png(root / "map_scratch_tas.png", "scratch tas")
    curve = [
        {"fraction": f, "n_train": n, "model": m, "variable": "tas", "metric": "rmse", "value": v}
        for f, n, ft, sc in ((0.1, 10, 0.50, 0.80), (0.5, 50, 0.36, 0.40), (1.0, 100, 0.33, 0.31))
        for m, v in (("finetuned", ft), ("scratch", sc))
    ]
    (root / "curve.json").write_text(json.dumps(curve))
    _tiny_png(root / "explain" / "attribution_tas.png", "attribution")
    (root / "explain" / "interactions.json").write_text(
        json.dumps({"tas": {"atmosphere": 0.7, "ocean": 0.2, "ice": 0.1}})
    )
    (root / "tune").mkdir()
    (root / "tune" / "best.yaml").write_text(
        yaml.safe_dump({"params": {"optim.lr": 0.0003, "model.width": 32}})
    )
    (root / "tune" / "trials.csv").write_text(
        "number,value,state,params_optim.lr\n0,0.41,COMPLETE,0.001\n1,0.37,COMPLETE,0.0003\n2,,FAIL,0.1\n"
    )
    _tiny_png(root / "tune" / "optimization_history.png", "history")
    return root


@pytest.fixture(name="tiny_png")
def tiny_png_fixture() -> Callable[..., Path]:
    """``tiny_png(path, title="")`` writes a small real PNG."""
    return _tiny_png


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The fake demo directory and its report, written once per test module."""
    from climatune.report.html import write_report

    root = make_demo_dir(tmp_path_factory.mktemp("rendered") / "demo")
    path = write_report(root)
    return path, path.read_text(encoding="utf-8")
