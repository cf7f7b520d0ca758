"""Evaluating a model pre-trained on several sources on one archive: the ways a user asks
for it work, each says how the data is read, and the refusal says how to ask."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from climatune import load_model
from climatune.cli import main
from climatune.config import load_config, model_config
from climatune.data.sources import grid_note, grid_spec
from climatune.data.view import build_view
from climatune.errors import ClimatuneError
from climatune.workflows.evaluate import _check_sources_grid
from climatune.workflows.pretraining import pretrain

SETS = [
    "data.split.train=[1980, 1983]",
    "data.split.val=[1984, 1984]",
    "data.split.test=[1985, 1986]",
    "data.normalization=global",
    "task.history=1",
    "model.width=4",
    "model.depth=1",
    "trainer.max_epochs=1",
    "trainer.progress_bar=false",
]


def _store(path, nlat: int, nlon: int, calendar: str) -> str:
    """Monthly tas (K) on a regular global ``nlat`` x ``nlon`` grid, 1980-1986."""
    time = xr.date_range("1980-01", periods=84, freq="MS", calendar=calendar, use_cftime=True)
    lat = -90 + 180 / nlat * (np.arange(nlat) + 0.5)
    lon = 360 / nlon * np.arange(nlon)
    tas = 280 + 20 * np.cos(np.deg2rad(lat))[:, None] + np.zeros(nlon)
    tas = tas + np.random.default_rng(nlat).normal(0, 1, (84, nlat, nlon))
    xr.Dataset(
        {"tas": (("time", "lat", "lon"), tas.astype("float32"), {"units": "K"})},
        coords={"time": time, "lat": lat, "lon": lon},
    ).to_netcdf(path)
    return str(path)


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    """A model pre-trained on sources a (8x16, its grid) and b (6x12, 360-day)."""
    root = tmp_path_factory.mktemp("eval-sources")
    a, b = _store(root / "a.nc", 8, 16, "noleap"), _store(root / "b.nc", 6, 12, "360_day")
    sources = f"data.sources=[{{name: a, path: {a}}}, {{name: b, path: {b}}}]"
    cfg = load_config(None, [sources, "data.grid=a", *SETS])
    return root, pretrain(cfg, out=root / "pre"), a, b


def _evaluate(run, out, *sets: str) -> int:
    argv = ["evaluate", str(run), "--baselines", "climatology", "--out", str(out)]
    return main(argv + [x for s in sets for x in ("--set", s)])


def test_the_refusal_of_several_sources_says_how_to_keep_one(multi, capsys):
    root, run, _, _ = multi
    assert _evaluate(run, root / "e0") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("climatune: error: evaluate scores one archive at a time; data.sources")
    assert "--set data.path=PATH (read on the file's own grid)" in err
    assert not (root / "e0").exists()


def test_one_other_source_is_read_on_the_model_grid(multi, caplog):
    root, run, _, b = multi
    # the stored data.grid names source a, which this list lacks: the model's grid is read
    assert _evaluate(run, root / "e1", f"data.sources=[{{name: b, path: {b}}}]") == 0
    assert "note: data.sources replaced: read on the model's own 8x16 grid" in caplog.text
    rows = json.loads((root / "e1" / "metrics.json").read_text())
    assert any(r["model"] == "pretrained" and r["metric"] == "rmse" for r in rows)
    cfg = model_config(load_model(run).meta, [f"data.sources=[{{name: b, path: {b}}}]"])
    assert cfg.data.grid is not None and not isinstance(cfg.data.grid, str)
    assert cfg.data.grid.lat == (-78.75, 78.75, 22.5) and cfg.data.grid.lon == (0, 337.5, 22.5)


def test_a_file_is_read_on_its_own_grid_with_a_note(multi, caplog):
    _, run, _, b = multi
    model = load_model(run)
    cfg = model_config(model.meta, [f"data.path={b}"])  # was: "give data.path or data.sources"
    assert cfg.data.sources is None and cfg.data.grid is None and cfg.data.path == b
    assert "note: data.path replaces the model's data.sources (a, b)" in caplog.text
    note = grid_note(model.meta.data["grid"], build_view(cfg.data, cfg.task).fields)
    assert note is not None and "this data is read on its own 30x30° grid (6x12)" in note
    assert note.endswith("data.grid {lat: [-78.75, 78.75, 22.5], lon: [0.0, 337.5, 22.5]}")


def test_grid_spec_reads_regular_axes_across_0():
    assert grid_spec([-5.0, 0.0, 5.0], [350.0, 355.0, 0.0, 5.0]) == {
        "lat": [-5.0, 5.0, 5.0],
        "lon": [-10.0, 5.0, 5.0],
    }
    assert grid_spec([0.0, 1.0, 3.0], [0.0, 1.0]) is None


def test_an_anomaly_model_on_another_grid_is_told_the_grid_to_read(multi):
    _, run, _, b = multi
    model = load_model(run)
    model.normalizer.climatology_ = {"tas": np.zeros((12, 8, 16), np.float32)}  # anomaly mode
    cfg = model_config(model.meta, [f"data.path={b}"])
    with pytest.raises(ClimatuneError) as err:
        _check_sources_grid(model, build_view(cfg.data, cfg.task))
    assert str(err.value) == (
        "the model reads anomalies from a climatology of its own 8x16 grid, which its "
        "data.sources were regridded to, and this data is on 6x12 cells: list it in "
        "data.sources with data.grid {lat: [-78.75, 78.75, 22.5], lon: [0.0, 337.5, 22.5]} "
        "to regrid it on the fly, or fine-tune on it"
    )


def test_tune_refuses_several_sources_in_one_line(multi, tmp_path, capsys):
    _, _, a, b = multi
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data:\n  sources: [{{name: a, path: {a}}}, {{name: b, path: {b}}}]\n")
    space = tmp_path / "s.yaml"
    space.write_text("optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2}\n")
    argv = ["tune", "--config", str(cfg), "--space", str(space), "--trials", "1"]
    assert main([*argv, "--folds", "2", "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err.strip()  # was a pandas traceback while scoring the first fold
    assert err.startswith("climatune: error: tune scores each fold on one archive")
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("command", ["curve", "leads"])
def test_curve_and_leads_refuse_several_sources_in_one_line(multi, tmp_path, capsys, command):
    _, run, a, b = multi
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data:\n  sources: [{{name: a, path: {a}}}, {{name: b, path: {b}}}]\n"
        "  split: {train: [1980, 1983], val: [1984, 1984], test: [1985, 1986]}\n"
    )
    more = ["--fractions", "1"] if command == "curve" else ["--leads", "1"]
    argv = [command, "--config", str(cfg), "--from", str(run), *more]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"climatune: error: {command} scores one archive at a time")
    assert not (tmp_path / "o").exists()
