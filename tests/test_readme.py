"""The README's Python API example runs as written."""

from __future__ import annotations

import math
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _api_example() -> str:
    section = README.read_text().split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_python_api_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(_api_example(), "README.md", "exec"), scope)
    rmse = {r["model"]: r["value"] for r in scope["rows"] if r["metric"] == "rmse"}
    assert set(rmse) == {"finetuned", "climatology", "persistence"}
    assert all(math.isfinite(v) and 0 < v < 5 for v in rmse.values())  # K, on 0.5 K noise
    forecast = scope["forecast"].tas
    assert forecast.attrs["units"] == "K" and forecast.notnull().any()
    assert (tmp_path / "runs" / "api-finetune" / "model" / "climatune.json").is_file()
