"""bench/zeroshot.py: windows tiled over a domain, scored as ``evaluate`` scores them."""

from __future__ import annotations

import json

import pytest

from climatune.cli import main as climatune
from climatune.config import dump_config
from climatune.testing import tiny_archive, tiny_config
from climatune.workflows.pretraining import pretrain

zeroshot = pytest.importorskip("bench.zeroshot")


def test_windows_keep_their_halo_inside_the_domain_and_reach_its_edges():
    boxes = zeroshot.tile_boxes((15.0, 60.0), (225.0, 315.0), (20.0, 25.0), 5.0, (3, 4))
    assert len(boxes) == 12
    lats = sorted({b[0] for b in boxes})
    lons = sorted({b[1] for b in boxes})
    assert lats == [(20.0, 40.0), (27.5, 47.5), (35.0, 55.0)]
    assert lons[0] == (230.0, 255.0) and lons[-1] == (285.0, 310.0) and len(lons) == 4
    assert zeroshot.tile_boxes((0.0, 40.0), (0.0, 40.0), (20.0, 20.0), 5.0, (1, 1)) == [
        ((10.0, 30.0), (10.0, 30.0))
    ]
    with pytest.raises(ValueError, match="does not fit"):
        zeroshot.tile_boxes((0.0, 20.0), (0.0, 90.0), (20.0, 20.0), 5.0, (1, 1))


def test_it_scores_the_region_and_each_window_against_the_whole_domain(tmp_path, capsys):
    archive = tiny_archive(tmp_path / "tiny.nc")
    sets = ["data.normalization=global", "trainer.max_epochs=1"]
    run = pretrain(tiny_config(archive, *sets), out=tmp_path / "run")
    regional = tiny_config(archive, *sets, "data.region={lat: [-30, 30], lon: [60, 150], halo: 20}")
    config = tmp_path / "regional.yaml"
    config.write_text(dump_config(regional))
    out = zeroshot.main(
        [str(run), "--config", str(config), "--tiles", "1x2", "--json", str(tmp_path / "z.json")]
    )
    assert json.loads((tmp_path / "z.json").read_text())["whole"] == pytest.approx(out["whole"])
    assert len(out["windows"]) == 2 and out["region"]["lat"] == (-30.0, 30.0)
    for row in [out["region"], *out["windows"]]:
        assert 0 < row["context"] and 0 < row["crop"]
    # the whole-domain score is evaluate's for the model on its own grid
    whole = tmp_path / "whole.yaml"
    whole.write_text(dump_config(tiny_config(archive, *sets)))
    capsys.readouterr()
    assert (
        climatune(
            [
                "evaluate",
                str(run),
                "--baselines",
                "none",
                "--config",
                str(whole),
                "--out",
                str(tmp_path / "ev"),
            ]
        )
        == 0
    )
    rows = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    (got,) = [
        r["value"]
        for r in rows
        if r["model"] == "pretrained" and r["metric"] == "rmse" and r["variable"] == "tas"
    ]
    assert out["whole"] == pytest.approx(got, rel=1e-5)
