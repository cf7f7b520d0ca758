"""Notes on multi-source archives whose parts would silently count for nothing: a source
with no training year in the split, a common grid that reaches beyond every source."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from climatune.cli import main
from climatune.config import load_config
from climatune.data.samples import fit_normalizer
from climatune.data.sources import describe_sources, mixing_probabilities, open_sources
from climatune.data.view import build_view
from climatune.errors import ClimatuneError


def _store(path, years: tuple[int, int], lat=(-60.0, 60.0), lon=(0.0, 330.0)) -> str:
    """Monthly tas (K), finite everywhere, on a regular grid spanning ``lat`` x ``lon``."""
    n = 12 * (years[1] - years[0] + 1)
    time = xr.date_range(f"{years[0]}-01", periods=n, freq="MS", calendar="noleap", use_cftime=True)
    la, lo = np.linspace(*lat, 5), np.linspace(lon[0], lon[1], 12)
    tas = 280.0 + np.random.default_rng(0).normal(0, 1, (n, la.size, lo.size))
    xr.Dataset(
        {"tas": (("time", "lat", "lon"), tas.astype("float32"), {"units": "K"})},
        coords={"time": time, "lat": la, "lon": lo},
    ).to_netcdf(path)
    return str(path)


def _config(a: str, b: str, *sets: str):
    return load_config(
        None,
        [
            f"data.sources=[{{name: a, path: {a}}}, {{name: b, path: {b}}}]",
            "data.split.train=[1980, 1983]",
            "data.split.val=[1984, 1984]",
            "data.split.test=[1985, 1986]",
            "data.normalization=global",
            *sets,
        ],
    )


def test_a_source_without_training_years_is_noted(tmp_path, caplog):
    a = _store(tmp_path / "a.nc", (1980, 1986))
    late = _store(tmp_path / "b.nc", (1985, 1986))  # only test years
    cfg = _config(a, late)
    view = build_view(cfg.data, cfg.task)
    assert set(view.fields.source.values[view.anchors["train"]]) == {"a"}
    assert caplog.text.count("note: source") == 1
    assert (
        "note: source b has no training sample in data.split.train (its steps span 1985-1986): "
        "it trains nothing" in caplog.text
    )
    caplog.clear()
    build_view(_config(a, _store(tmp_path / "c.nc", (1980, 1986))).data, cfg.task)
    assert "no training sample" not in caplog.text


def test_a_grid_beyond_every_source_is_noted_and_one_outside_all_refused(tmp_path, caplog):
    a = _store(tmp_path / "a.nc", (1980, 1986))
    b = _store(tmp_path / "b.nc", (1980, 1986), lat=(-30.0, 30.0))
    # rows at -90 and 90 lie outside both sources (-60..60): NaN in every step
    cfg = _config(a, b, "data.grid={lat: [-90, 90, 30], lon: [0, 330, 30]}")
    ds = open_sources(cfg.data)
    empty = ds.tas.isnull().all("time").values
    assert empty[[0, -1]].all() and not empty[1:-1].any()
    assert (
        "note: data.grid reaches beyond every source: 24 of 84 cells, rows at lat -90, 90 "
        "hold no data" in caplog.text
    )
    caplog.clear()
    open_sources(_config(a, b, "data.grid={lat: [-60, 60, 30], lon: [0, 330, 30]}").data)
    assert "beyond every source" not in caplog.text
    outside = _config(a, b, "data.grid={lat: [70, 85, 5], lon: [0, 330, 30]}")
    with pytest.raises(ClimatuneError, match=r"data.grid \(lat 70..85, .*lies outside every"):
        open_sources(outside.data)


def test_a_grid_across_0_from_its_western_edge_and_a_descending_one(tmp_path, capsys):
    a = _store(tmp_path / "a.nc", (1980, 1986))
    b = _store(tmp_path / "b.nc", (1980, 1986))
    west = _config(a, b, "data.grid={lat: [-30, 30, 30], lon: [300, 60, 30]}").data
    assert west.grid.lon == (300.0, 420.0, 30.0)
    assert open_sources(west).lon.values.tolist() == [-60.0, -30.0, 0.0, 30.0, 60.0]
    path = tmp_path / "c.yaml"
    path.write_text(
        f"data:\n  sources: [{{name: a, path: {a}}}]\n"
        "  grid: {lat: [30, -30, 30], lon: [0, 60, 30]}\n"
    )
    assert main(["data", "inspect", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("climatune: error: config key 'data.grid' in ")
        and "grid.lat must be [first, last, step] from south to north with step > 0" in err
    )
    assert "valid string" not in err and "\n" not in err


def test_anomalies_of_several_sources_say_their_climatology_is_pooled(tmp_path, caplog):
    a = _store(tmp_path / "a.nc", (1980, 1986))
    b = _store(tmp_path / "b.nc", (1980, 1986))
    cfg = _config(a, b, "data.normalization=anomaly")
    view = build_view(cfg.data, cfg.task)
    fit_normalizer(view, "anomaly")
    assert "note: the anomalies of a, b are taken from one climatology pooled over these 2" in (
        caplog.text
    )
    caplog.clear()
    fit_normalizer(view, "global")
    assert "pooled over" not in caplog.text


def test_inspect_lists_as_missing_only_the_variables_asked_for(tmp_path):
    a = _store(tmp_path / "a.nc", (1980, 1986))
    with_psl = xr.open_dataset(a).load()
    with_psl["psl"] = (
        with_psl.tas.dims,
        np.full(with_psl.tas.shape, 1000.0, "f4"),
        {"units": "hPa"},
    )
    with_psl.to_netcdf(tmp_path / "p.nc")
    both = f"data.sources=[{{name: a, path: {a}}}, {{name: p, path: {tmp_path / 'p.nc'}}}]"
    rows = {r["source"]: r for r in describe_sources(load_config(None, [both]).data)["sources"]}
    assert rows["a"]["missing"] == ["psl"]
    asked = load_config(None, [both, "data.variables=[tas]"]).data
    assert [r["missing"] for r in describe_sources(asked)["sources"]] == [[], []]


def test_a_lacking_variable_held_under_another_name_is_pointed_at(tmp_path, caplog):
    a = _store(tmp_path / "a.nc", (1980, 1986))
    ds = xr.open_dataset(a).load()
    ds.tas.attrs["standard_name"] = "air_temperature"
    ds.to_netcdf(tmp_path / "std.nc")
    ds.rename(tas="ts").to_netcdf(tmp_path / "ts.nc")  # a CMIP-like name, same standard_name
    both = f"[{{name: a, path: {tmp_path / 'std.nc'}}}, {{name: c, path: {tmp_path / 'ts.nc'}}}]"
    open_sources(load_config(None, [f"data.sources={both}", "data.variables=[tas]"]).data)
    assert (
        "note: source c lacks tas: fed as missing (all NaN: valid fraction 0, no loss there); "
        "it has ts with the same standard_name: map it with data.sources[].variables: {tas: ts}"
    ) in caplog.text


def test_a_train_fraction_keeps_the_latest_years_of_every_source(tmp_path, caplog):
    a = _store(tmp_path / "a.nc", (1980, 1986))
    b = _store(tmp_path / "b.nc", (1980, 1986))
    cfg = _config(a, b, "data.train_fraction=0.5")
    view = build_view(cfg.data, cfg.task)
    train = view.anchors["train"]
    full = build_view(_config(a, b).data, cfg.task).anchors["train"]
    labels = view.fields.source.values
    years = view.fields.time.dt.year.values
    for name in ("a", "b"):  # was: all of b's and none of a's
        mine, all_of_it = train[labels[train] == name], full[labels[full] == name]
        assert mine.size == int(np.ceil(all_of_it.size / 2))
        assert (mine == all_of_it[-mine.size :]).all() and years[mine].max() == 1983
    assert "no training sample" not in caplog.text


def test_huge_source_weights_still_mix():
    labels = np.array(["a", "a", "b"])
    for w in (1e308, 1e-300):
        p = mixing_probabilities(labels, {"a": w, "b": w})
        np.testing.assert_allclose(p, [0.25, 0.25, 0.5])


def test_conservative_regridding_to_a_grid_across_the_sources_seam(tmp_path):
    """A global 0..360 source regridded conservatively to lon 320..40: it raised a pandas
    interval error (the target ran 320..350, 0..40 in the source's range)."""
    lat, lon = np.arange(-85.0, 90.0, 10.0), np.arange(0.0, 360.0, 10.0)
    time = xr.date_range("1980-01", periods=84, freq="MS", calendar="noleap", use_cftime=True)
    field = 280.0 + 20 * np.cos(np.deg2rad(lat))[:, None] + 3 * np.sin(np.deg2rad(lon))[None]
    xr.Dataset(
        {"tas": (("time", "lat", "lon"), np.broadcast_to(field, (84, *field.shape)).astype("f4"),
                 {"units": "K"})},
        coords={"time": time, "lat": lat, "lon": lon},
    ).to_netcdf(tmp_path / "g.nc")  # fmt: skip
    cfg = load_config(
        None,
        [
            f"data.sources=[{{name: g, path: {tmp_path / 'g.nc'}, regrid: conservative}}]",
            "data.grid={lat: [-25, 25, 10], lon: [325, 35, 10]}",
        ],
    )
    ds = open_sources(cfg.data)
    assert ds.lon.values.tolist() == [-35.0, -25.0, -15.0, -5.0, 5.0, 15.0, 25.0, 35.0]
    la, lo = np.deg2rad(ds.lat.values)[:, None], np.deg2rad(ds.lon.values)[None]
    want = 280.0 + 20 * np.cos(la) + 3 * np.sin(lo)
    np.testing.assert_allclose(ds.tas.isel(time=0).values, want, atol=0.1)


def test_conservative_regridding_of_a_regional_source_to_a_grid_across_0(tmp_path):
    lat, lon = np.arange(-25.0, 30.0, 10.0), np.arange(0.0, 61.0, 10.0)  # 0..60°E only
    time = xr.date_range("1980-01", periods=84, freq="MS", calendar="noleap", use_cftime=True)
    tas = np.full((84, lat.size, lon.size), 280.0, "f4")
    xr.Dataset(
        {"tas": (("time", "lat", "lon"), tas, {"units": "K"})},
        coords={"time": time, "lat": lat, "lon": lon},
    ).to_netcdf(tmp_path / "r.nc")
    for method in ("bilinear", "conservative"):
        cfg = load_config(
            None,
            [
                f"data.sources=[{{name: r, path: {tmp_path / 'r.nc'}, regrid: {method}}}]",
                "data.grid={lat: [-20, 20, 10], lon: [-20, 20, 10]}",
            ],
        )
        got = open_sources(cfg.data).tas.isel(time=0).values
        assert np.isnan(got[:, :2]).all()  # west of 0°E: outside the source
        np.testing.assert_allclose(got[:, 2:], 280.0)


def test_inspect_counts_the_gaps_of_a_time_axis(tmp_path, capsys):
    a = _store(tmp_path / "a.nc", (1980, 1986))
    xr.open_dataset(a).load().drop_isel(time=[30, 31, 50]).to_netcdf(tmp_path / "holes.nc")
    assert main(["data", "inspect", str(tmp_path / "holes.nc"), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["gaps"] == 2 and row["n_times"] == 81
    cfg = _config(a, str(tmp_path / "holes.nc"))
    rows = {r["source"]: r for r in describe_sources(cfg.data)["sources"]}
    assert (rows["a"]["gaps"], rows["b"]["gaps"]) == (0, 2)


def test_a_split_whose_sources_all_lack_the_target_is_refused_before_training(tmp_path):
    a = _store(tmp_path / "a.nc", (1980, 1983))
    psl = xr.open_dataset(_store(tmp_path / "tmp.nc", (1980, 1986))).load()
    psl.rename(tas="psl").assign_attrs().to_netcdf(tmp_path / "b.nc")  # no tas at all
    cfg = _config(a, str(tmp_path / "b.nc"), "data.targets=[tas]", "data.variables=[tas, psl]")
    with pytest.raises(ClimatuneError) as err:
        build_view(cfg.data, cfg.task)  # val 1984 and test 1985-1986: only b has them
    assert str(err.value).startswith(
        "the val years 1984-1984 of data.split hold no target value: their source(s) b lack tas"
    )


def test_a_mapping_to_a_series_is_refused(tmp_path):
    a = _store(tmp_path / "a.nc", (1980, 1986))
    ds = xr.open_dataset(a).load()
    ds["nino34"] = ds.tas.mean(("lat", "lon")).assign_attrs(units="K")
    ds.to_netcdf(tmp_path / "n.nc")
    both = f"[{{name: a, path: {a}}}, {{name: n, path: {tmp_path / 'n.nc'}, variables: {{tas: nino34}}}}]"
    with pytest.raises(ClimatuneError) as err:  # it was broadcast over the grid as tas
        open_sources(load_config(None, [f"data.sources={both}"]).data)
    assert str(err.value).startswith(
        "source 'n' maps tas to 'nino34', which is not a (time, lat, lon) field (its "
        "dimensions: time)"
    )
