"""Fine-tuning a model pre-trained with per-source statistics (``data.source_normalization:
per_source``): the new data is a new source (pooled statistics, said so), or, listed in
``data.sources`` per source, keeps the statistics of the sources the model knew."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from climatune import load_model
from climatune.cli import main
from climatune.config import load_config
from climatune.data.normalize import SourceNormalizer
from climatune.data.view import build_view
from climatune.finetune.transfer import merged_normalizer
from climatune.inference import predict_view
from climatune.workflows.pretraining import pretrain

SPLIT = [
    "data.split.train=[1980, 1983]",
    "data.split.val=[1984, 1984]",
    "data.split.test=[1985, 1985]",
]
TINY = ["model.width=4", "model.depth=1", "trainer.max_epochs=1", "trainer.progress_bar=false"]
TINY += ["data.normalization=global", "task.history=1", "task.lead=1"]


def _store(path, calendar: str, offset: float, seed: int) -> str:
    """Monthly tas (K) on a 6x12 global grid, 1980-1985: noise around 280 K + ``offset``."""
    time = xr.date_range("1980-01", periods=72, freq="MS", calendar=calendar, use_cftime=True)
    lat, lon = np.linspace(-75, 75, 6), np.arange(0.0, 360.0, 30.0)
    tas = 280.0 + offset + np.random.default_rng(seed).normal(0, 2.0, (72, 6, 12))
    xr.Dataset(
        {"tas": (("time", "lat", "lon"), tas.astype("float32"), {"units": "K"})},
        coords={"time": time, "lat": lat, "lon": lon},
    ).to_netcdf(path)
    return str(path)


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """Pre-trained on sources A (noleap) and B (360_day, 10 K warmer), per source; and C,
    a third archive 4 K warmer than A."""
    root = tmp_path_factory.mktemp("per-source")
    paths = {
        "A": _store(root / "a.nc", "noleap", 0.0, 1),
        "B": _store(root / "b.nc", "360_day", 10.0, 2),
        "C": _store(root / "c.nc", "standard", 4.0, 3),
    }
    sources = f"data.sources=[{{name: A, path: {paths['A']}}}, {{name: B, path: {paths['B']}}}]"
    cfg = load_config(None, [sources, "data.source_normalization=per_source", *SPLIT, *TINY])
    run = pretrain(cfg, out=root / "pre")
    return load_model(run), paths


def test_a_new_archive_reads_with_the_pooled_statistics_and_says_so(parent):
    model, paths = parent
    assert isinstance(model.normalizer, SourceNormalizer)
    assert sorted(model.normalizer.sources_) == ["A", "B"]
    cfg = load_config(None, [f"data.path={paths['C']}", *SPLIT, *TINY])
    norm, lines = merged_normalizer(
        model, build_view(cfg.data, cfg.task), cfg.finetune.normalization
    )
    assert not isinstance(norm, SourceNormalizer)
    assert norm.mean_["tas"] == model.normalizer.mean_["tas"]  # pooled, kept (no clear shift)
    assert lines[0] == "statistics:     kept tas; refitted -"
    assert lines[-1].startswith("per source:     not used (A, B): this data is a new source")


def test_per_source_fine_tuning_keeps_the_known_sources_statistics(parent):
    model, paths = parent
    sources = f"data.sources=[{{name: B, path: {paths['B']}}}, {{name: C, path: {paths['C']}}}]"
    cfg = load_config(None, [sources, "data.source_normalization=per_source", *SPLIT, *TINY])
    norm, lines = merged_normalizer(
        model, build_view(cfg.data, cfg.task), cfg.finetune.normalization, per_source=True
    )
    assert isinstance(norm, SourceNormalizer) and sorted(norm.sources_) == ["B", "C"]
    assert norm.sources_["B"].mean_ == model.normalizer.sources_["B"].mean_
    assert norm.sources_["B"].std_ == model.normalizer.sources_["B"].std_
    assert norm.sources_["C"].mean_["tas"] == pytest.approx(284.0, abs=0.2)  # C's own
    assert norm.mean_["tas"] == model.normalizer.mean_["tas"]  # pooled: kept
    assert (
        lines[-1] == "per source:     B kept tas, refitted -; C fitted (a source new to the model)"
    )


def test_predict_says_a_file_reads_with_the_pooled_statistics(parent, tmp_path, caplog):
    model, paths = parent
    out = tmp_path / "p.nc"
    argv = ["predict", str(model.model_dir), "--input", paths["A"], "--output", str(out)]
    assert main(argv) == 0 and out.exists()
    assert f"note: {paths['A']} is read with the pooled statistics; the model's own" in caplog.text
    assert "statistics of A, B are for its data.sources" in caplog.text


def test_predictions_of_a_listed_source_are_denormalised_with_its_own_statistics(parent):
    """The targets of source B were normalised with B's statistics in training, so its
    predictions must be turned back with them too, not with the pooled ones (5 K lower)."""
    model, paths = parent
    cfg = load_config(None, [f"data.sources=[{{name: B, path: {paths['B']}}}]", *SPLIT, *TINY])
    view = build_view(cfg.data, cfg.task)
    pred = predict_view(model, view, "test")
    truth = view.truth("test")
    own, pooled = model.normalizer.sources_["B"], model.normalizer
    assert own.mean_["tas"] - pooled.mean_["tas"] > 4.5
    bias = float((pred.tas - truth.tas).mean())
    assert abs(bias) < 1.5, bias  # was about -5 K: B's anomalies read back on pooled means
