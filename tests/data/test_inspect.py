"""``climatune data inspect``: rows per variable, JSON and table output."""

from __future__ import annotations

import json

import numpy as np
import pytest

from climatune.cli import main
from climatune.data.inspect import format_table, inspect_paths


@pytest.fixture
def test_file(tmp_path, make_test_dataset):
    raw = make_test_dataset(ntime=24, nlat=6, nlon=8, nlevel=2, index=True, lon_180=True)
    tas = raw.tas.values.copy()
    tas[:, 0, :] = np.nan  # one latitude row of 6 is missing everywhere
    raw["tas"] = raw.tas.copy(data=tas)
    path = tmp_path / "test.nc"
    raw.to_netcdf(path)
    return path


def test_cli_inspect_sample_json(capsys):
    rc = main(["data", "inspect", "sample://A1B_north_america", "--json"])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1
    row = rows[0]
    assert row["source"] == "sample://A1B_north_america"
    assert row["variable"] == "air_temperature" and row["units"] == "K"
    assert row["standard_name"] == "air_temperature"
    assert row["n_times"] == 240 and row["calendar"] == "360_day"
    assert (row["grid"]["nlat"], row["grid"]["nlon"]) == (37, 49)
    assert (row["grid"]["dlat"], row["grid"]["dlon"]) == (1.25, 1.875)
    assert row["grid"]["lat_range"] == [15, 60] and row["grid"]["lon_range"] == [225, 315]
    assert row["time_first"].startswith("1860-") and row["time_last"].startswith("2099-")
    assert row["dims"] == ["time", "lat", "lon"] and row["levels"] is None
    assert row["nan_fraction"] == 0.0


def test_inspect_rows_per_variable(test_file):
    rows = {r["variable"]: r for r in inspect_paths([str(test_file)])}
    assert sorted(rows) == ["nino34", "pr", "tas", "z"]
    tas, z, nino = rows["tas"], rows["z"], rows["nino34"]
    assert tas["nan_fraction"] == pytest.approx(1 / 6, abs=1e-6)
    assert rows["pr"]["nan_fraction"] == 0.0
    assert tas["grid"] == {
        "nlat": 6,
        "nlon": 8,
        "dlat": 30,
        "dlon": 45,
        "lat_range": [-75, 75],
        "lon_range": [0, 315],
    }
    assert z["levels"] == [1000, 850] and z["level_units"] == "hPa"
    assert z["dims"] == ["time", "level", "lat", "lon"]
    assert tas["calendar"] == "noleap" and tas["frequency"] == "MS" and tas["n_times"] == 24
    assert tas["time_first"] == "2000-01-01T00:00:00"
    assert tas["time_last"] == "2001-12-01T00:00:00"
    assert nino["grid"] is None and nino["dims"] == ["time"] and nino["n_times"] == 24
    json.dumps(list(rows.values()))  # JSON-ready


def test_inspect_several_sources_and_index_sample(test_file):
    rows = inspect_paths([str(test_file), "sample://SOI_Darwin"])
    assert [r["source"] for r in rows].count("sample://SOI_Darwin") == 1
    soi = rows[-1]
    assert soi["variable"] == "SOI_Darwin" and soi["grid"] is None and soi["n_times"] == 1776
    assert 0 < soi["nan_fraction"] < 0.05


def test_format_table_is_plain_text(test_file):
    rows = inspect_paths([str(test_file), "sample://A1B_north_america"])
    text = format_table(rows, width=160)
    assert "\x1b" not in text  # no terminal control codes
    for needle in (
        "tas",
        "nino34",
        "air_temperature",
        "37x49 @ 1.25x1.875°",
        "360_day",
        "1000,850 hPa",
        "16.7",
        str(test_file),
    ):
        assert needle in text
    assert max(len(line) for line in text.splitlines()) <= 160
    assert format_table([]) == "no variables found"


def test_cli_inspect_prints_table(test_file, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")  # a table as wide as a terminal, whoever runs it
    assert main(["data", "inspect", str(test_file)]) == 0
    out = capsys.readouterr().out
    assert "variable" in out and "kg m-2 s-1" in out and "noleap" in out
