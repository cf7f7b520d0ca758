"""Multi-source archives: regridding, calendars, units, missing variables, statistics, mixing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr

from climatune.cli import main
from climatune.config import load_config
from climatune.data.normalize import Normalizer, SourceNormalizer
from climatune.data.regrid import regrid
from climatune.data.samples import SourceMixSampler, TaskSamples, fit_normalizer, read_window
from climatune.data.sources import mixing_probabilities, open_sources
from climatune.data.stream import TaskStream
from climatune.data.units import to_units
from climatune.data.view import build_view
from climatune.models.stem import VariableStem
from climatune.training.datamodule import ClimateDataModule
from climatune.training.losses import weighted_mse

OFFSET_B = 3.0  # source B is this much warmer than A (in K)


def smooth(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """A smooth field (K) whose value is known at any point."""
    la, lo = np.deg2rad(lat)[:, None], np.deg2rad(lon)[None, :]
    return 280.0 + 20.0 * np.cos(la) ** 2 + 4.0 * np.sin(lo) * np.cos(la)


def store(path, nlat, nlon, calendar, years, *, var="tas", units="K", psl=True, offset=0.0):
    """A monthly store on a regular ``nlat`` x ``nlon`` global grid: the smooth field plus
    seeded noise and ``offset``, and (``psl``) a second variable in hPa."""
    time = xr.date_range(
        f"{years[0]}-01", periods=12 * (years[1] - years[0] + 1), freq="MS",
        calendar=calendar, use_cftime=True,
    )  # fmt: skip
    dlat = 180.0 / nlat
    lat = -90 + dlat / 2 + dlat * np.arange(nlat)
    lon = 360.0 / nlon * np.arange(nlon)
    noise = np.random.default_rng(nlat).normal(0, 0.5, (time.size, nlat, nlon))
    tas = smooth(lat, lon)[None] + offset + noise
    data = tas - 273.15 if units == "degC" else tas
    ds = xr.Dataset(
        {var: (("time", "lat", "lon"), data.astype("float32"), {"units": units})},
        coords={"time": time, "lat": lat, "lon": lon},
    )
    if psl:
        ds["psl"] = (("time", "lat", "lon"), (1000.0 + noise).astype("float32"), {"units": "hPa"})
    ds.to_netcdf(path)
    return str(path)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    return {
        "A": store(root / "a.nc", 24, 48, "noleap", (2000, 2009)),
        # B: another grid, a 360-day calendar, tas named t2m in degC, no psl, 3 K warmer
        "B": store(
            root / "b.nc",
            18,
            32,
            "360_day",
            (1998, 2009),
            var="t2m",
            units="degC",
            psl=False,
            offset=OFFSET_B,
        ),  # fmt: skip
    }


GRID = ["data.grid={lat: [-78.75, 78.75, 7.5], lon: [0, 352.5, 7.5]}", "data.normalization=global"]


def sources_config(stores, *sets: str):
    base = [
        f"data.sources=[{{name: A, path: {stores['A']}, weight: 1}}, {{name: B, path: "
        f"{stores['B']}, variables: {{tas: t2m}}, weight: 3, regrid: {{tas: conservative}}}}]",
        "data.split.train=[2000, 2005]",
        "data.split.val=[2006, 2007]",
        "data.split.test=[2008, 2009]",
        "data.normalization=global",
        "data.grid={lat: [-78.75, 78.75, 7.5], lon: [0, 352.5, 7.5]}",  # inside both sources
    ]
    return load_config(None, base + list(sets))


@pytest.fixture(scope="module")
def view(stores):
    cfg = sources_config(stores)
    return build_view(cfg.data, cfg.task)


def test_regridded_values_match_the_smooth_field(stores):
    grid = "data.grid={lat: [-60, 60, 7.5], lon: [1, 359, 7]}"  # cells across the seam too
    for method in ("bilinear", "conservative"):
        one = f"data.sources=[{{name: B, path: {stores['B']}, regrid: {method}}}]"
        cfg = load_config(None, [one, grid, "data.normalization=global"])
        ds = open_sources(cfg.data)
        assert ds.lat.size == 17 and ds.lon.size == 52
        mean = ds.t2m.mean("time").values + 273.15 - OFFSET_B  # the noise averages out
        err = np.abs(mean - smooth(ds.lat.values, ds.lon.values))
        assert np.isfinite(mean).all()
        # 18x32 source cells (10° x 11.25°) of a field varying by up to 24 K
        assert err.max() < 0.6, (method, err.max())
        assert err.mean() < 0.25, (method, err.mean())


def test_weights_are_those_of_xarray_regrid():
    """The matrix products give what xarray-regrid's own regridders give, NaN cells too."""
    xarray_regrid = pytest.importorskip("xarray_regrid")
    assert xarray_regrid  # registers the .regrid accessor
    lat, lon = np.arange(-80.0, 81, 10), np.arange(0.0, 360, 15)
    values = smooth(lat, lon)[None].repeat(2, 0)
    values[1, 3, 4] = np.nan  # a masked cell
    da = xr.DataArray(values, dims=("time", "lat", "lon"), coords={"lat": lat, "lon": lon})
    target = xr.Dataset(coords={"lat": np.arange(-72.5, 75, 7.5), "lon": np.arange(5.0, 340, 9)})
    bilinear = regrid(da, target.lat.values, target.lon.values, "bilinear")
    theirs = da.to_dataset(name="x").regrid.linear(target).x
    np.testing.assert_allclose(bilinear.values, theirs.values, rtol=1e-6)  # float32
    ours = regrid(da, target.lat.values, target.lon.values, "conservative")
    theirs = da.to_dataset(name="x").regrid.conservative(target, latitude_coord="lat").x
    np.testing.assert_allclose(ours.values, theirs.values, rtol=1e-6)
    # bilinear: NaN around the masked cell; conservative keeps the valid part of the cells
    assert np.isnan(bilinear.values[1]).sum() > np.isnan(ours.values[1]).sum()
    assert not np.isnan(ours.values[0]).any() and not np.isnan(bilinear.values[0]).any()


def test_sources_align_on_year_month_labels_with_units_and_lazy_chunks(view, stores):
    fields = view.fields
    labels = fields.source.values
    assert (labels == "A").sum() == 120 and (labels == "B").sum() == 144
    assert fields.lat.size == 22 and fields.lon.size == 48  # data.grid
    assert str(fields.time.dt.calendar) == "noleap"  # labels in the first source's calendar
    a, b = fields.time[labels == "A"], fields.time[labels == "B"]
    assert (a.dt.day == 1).all() and (b.dt.day == 1).all()
    assert [str(t)[:7] for t in b.values[24:36]] == [str(t)[:7] for t in a.values[:12]]
    # B converted from degC to K: ~3 K warmer than A on average
    assert not fields.tas.isnull().any()
    diff = (
        fields.tas.where(fields.source == "B").mean()
        - fields.tas.where(fields.source == "A").mean()
    )
    assert float(diff) == pytest.approx(OFFSET_B, abs=0.1)
    assert fields.tas.attrs["units"] == "K"
    # regridded lazily, with B's own time chunks (a window regrids only its chunks)
    assert fields.tas.chunks is not None
    raw = xr.open_dataset(stores["B"], chunks={"time": 24})
    assert raw.t2m.chunks is not None
    # exactly the samples of each split's years in each source; none spans two sources
    n = view.n_samples()
    assert n == {"train": 2 * 71, "val": 2 * 23, "test": 2 * 23}
    train = view.anchors["train"]
    assert (labels[train] == labels[train + 1]).all()


def test_missing_variable_is_flagged_to_the_network_and_the_loss(view):
    labels = view.fields.source.values
    assert np.isnan(view.fields.psl.where(view.fields.source == "B")).all()  # fed as missing
    norm = fit_normalizer(view)
    data = TaskSamples(view, "train", norm)
    i_a = int(np.flatnonzero(labels[data.anchors] == "A")[0])
    i_b = int(np.flatnonzero(labels[data.anchors] == "B")[0])
    item_a, item_b = data[i_a], data[i_b]
    psl = view.inputs.index("psl")
    assert torch.isnan(item_b["fields"][psl]).all()  # not zeros: the stem sees it missing
    assert torch.isfinite(item_b["fields"][1 - psl]).all()
    assert torch.isfinite(item_a["fields"]).all()
    stream = next(iter(TaskStream(view, "train", norm, batch_size=300, shuffle=False)))
    rows = labels[stream["anchor"].numpy()] == "B"
    assert torch.isnan(stream["fields"][rows, psl]).all()
    assert not torch.isnan(stream["fields"][~rows]).any()
    # the stem's valid-fraction channel is 0 there: the output differs from zeros fed as data
    stem = VariableStem(view.inputs, history=1, n_static=0, width=4)
    fields = item_b["fields"][None]
    zeros = torch.nan_to_num(fields)
    assert not torch.allclose(stem(fields), stem(zeros))
    # the loss ignores the missing target: it equals the loss of the other variable alone
    target = item_b["target"][None]
    pred = torch.randn_like(target)
    keep = 1 - psl
    assert torch.isnan(target[:, psl]).all()
    full = weighted_mse(pred, target)
    alone = weighted_mse(pred[:, keep : keep + 1], target[:, keep : keep + 1])
    assert torch.isfinite(full) and float(full) == pytest.approx(float(alone))


def test_pooled_and_per_source_statistics(view, stores):
    pooled = fit_normalizer(view)
    per = fit_normalizer(view, per_source=True)
    assert isinstance(per, SourceNormalizer) and not isinstance(pooled, SourceNormalizer)
    a, b = per.sources_["A"].mean_["tas"], per.sources_["B"].mean_["tas"]
    assert b - a == pytest.approx(OFFSET_B, abs=0.1)
    assert a < pooled.mean_["tas"] < b
    assert "psl" not in per.sources_["B"].mean_  # B has none: the pooled statistics stand
    labels = view.fields.source.values
    steps = view.steps("train")
    window = slice(int(steps[0]), int(steps[-1]) + 1)
    inside = np.isin(np.arange(window.start, window.stop), steps)
    tas = view.inputs.index("tas")
    for norm, gap in ((pooled, True), (per, False)):
        x, _ = read_window(view, norm, window)
        src = labels[window][inside]
        m_a = np.nanmean(x[inside][src == "A", tas])
        m_b = np.nanmean(x[inside][src == "B", tas])
        # pooled: B sits ~3 K / std above A; per source: each is centred on its own mean
        assert (abs(m_b - m_a) > 0.3) == gap, (m_a, m_b)
    # stored in the artifact and read back (predict and evaluate use it)
    back = Normalizer.from_dict(json.loads(json.dumps(per.to_dict())))
    assert isinstance(back, SourceNormalizer)
    assert back.sources_["B"].mean_ == pytest.approx(per.sources_["B"].mean_)
    assert back.for_source("B").mean_["psl"] == per.mean_["psl"]
    with pytest.raises(Exception, match="per_source keeps one mean"):
        fit_normalizer(view, "anomaly", per_source=True)
    # evaluating on one listed source (as `evaluate` does) reads it with its own statistics
    one = load_config(None, [f"data.sources=[{{name: B, path: {stores['B']}, "
                             "variables: {tas: t2m}}]", *GRID, "data.split.train=[2000, 2005]",
                             "data.split.val=[2006, 2007]", "data.split.test=[2008, 2009]"])  # fmt: skip
    b_view = build_view(one.data, one.task)
    b_view.fields = to_units(b_view.fields, {"tas": "K"}, "the model")[0]  # as evaluate does
    test = b_view.steps("test")
    means = [
        abs(float(np.nanmean(read_window(b_view, n, slice(int(test[0]), int(test[-1]) + 1))[0])))
        for n in (back, pooled)
    ]
    assert means[0] < 0.05 < 0.15 < means[1]  # own statistics centre B; pooled ones do not


def test_batches_mix_sources_by_weight_deterministically(view):
    labels = view.fields.source.values
    norm = fit_normalizer(view)
    weights = {"A": 1.0, "B": 3.0}
    p = mixing_probabilities(labels[view.anchors["train"]], weights)
    assert p[labels[view.anchors["train"]] == "B"].sum() == pytest.approx(0.75)
    big = SourceMixSampler(np.tile(p, 50), seed=1)
    drawn = np.tile(labels[view.anchors["train"]], 50)[list(big)]
    assert np.mean(drawn == "B") == pytest.approx(0.75, abs=0.02)

    def order(seed, epoch=0, **kw):
        dm = ClimateDataModule(view, norm, batch_size=16, seed=seed, source_weights=weights, **kw)
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return np.concatenate([b["anchor"].numpy() for b in loader])

    first = order(0, in_memory="always")
    assert np.array_equal(first, order(0, in_memory="always"))  # deterministic per seed
    assert not np.array_equal(first, order(1, in_memory="always"))
    assert np.mean(labels[first] == "B") == pytest.approx(0.75, abs=0.1)
    stream = TaskStream(view, "train", norm, chunk_steps=4, source_weights=weights, seed=3)
    got = np.array([int(s["anchor"]) for s in stream])
    assert np.mean(labels[got] == "B") == pytest.approx(0.75, abs=0.05)
    again = np.array([int(s["anchor"]) for s in stream])
    assert np.array_equal(got, again)


def test_stream_reads_the_samples_of_task_samples(view):
    """Chunk by chunk (bounded memory), a multi-source stream yields what TaskSamples holds."""
    norm = fit_normalizer(view, per_source=True)
    ref = TaskSamples(view, "train", norm)
    stream = TaskStream(view, "train", norm, chunk_steps=5, buffer_chunks=2, seed=5)
    got = {int(s["anchor"]): s for s in stream}
    assert sorted(got) == sorted(ref.anchors.tolist())
    for i, a in enumerate(ref.anchors.tolist()):
        assert torch.equal(
            torch.nan_to_num(got[a]["fields"], 9.0), torch.nan_to_num(ref[i]["fields"], 9.0)
        )
    assert max(len(run) for run in stream.chunks) <= 5


def test_a_window_regrids_only_the_blocks_that_hold_it(stores, tmp_path, monkeypatch):
    """Regridding is one task per stored time chunk: a read of a few steps regrids only
    the chunks they lie in, however long the archive (the stream's memory bound)."""
    import climatune.data.regrid as regrid_mod

    path = tmp_path / "b.zarr"
    xr.open_dataset(stores["B"]).chunk(time=12).to_zarr(path)
    seen: list[int] = []
    apply = regrid_mod._apply
    monkeypatch.setattr(
        regrid_mod, "_apply", lambda x, *a, **k: seen.append(x.shape[0]) or apply(x, *a, **k)
    )
    cfg = load_config(None, [f"data.sources=[{{name: B, path: {path}}}]", *GRID])
    view = build_view(cfg.data, cfg.task)
    assert set(view.fields.t2m.chunks[0]) == {12}
    norm = fit_normalizer(view)
    seen.clear()
    read_window(view, norm, slice(30, 35))
    assert seen and max(seen) <= 12 and sum(seen) <= 12  # one 12-step block of 144


def test_cli_inspect_shows_every_source_and_the_common_grid(stores, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "data:\n  sources:\n"
        f"    - {{name: A, path: {stores['A']}}}\n"
        f"    - {{name: B, path: {stores['B']}, variables: {{tas: t2m}}, weight: 3}}\n"
        "  grid: {lat: [-80, 80, 10], lon: [0, 350, 10]}\n"
    )
    assert main(["data", "inspect", str(cfg), "--json"]) == 0
    desc = json.loads(capsys.readouterr().out)
    rows = {r["source"]: r for r in desc["sources"]}
    assert rows["A"]["calendar"] == "noleap" and rows["B"]["calendar"] == "360_day"
    assert rows["B"]["years"] == [1998, 2009] and rows["B"]["grid"] == [18, 32]
    assert rows["B"]["variables"] == {"tas": "degC"} and rows["B"]["missing"] == ["psl"]
    assert desc["grid"]["nlat"] == 17 and desc["grid"]["nlon"] == 36
    assert main(["data", "inspect", str(cfg)]) == 0
    text = capsys.readouterr().out
    assert "360_day" in text and "common grid (explicit): 17x36" in text


@pytest.mark.parametrize(
    "sources, extra, message",
    [
        ("[{name: A, path: PA}, {name: A, path: PB}]", [], "names must be unique"),
        ("[{name: A, path: PA}]", ["data.grid=C"], "not a source"),
        ("[{name: A, path: PA}]", ["data.path=PB"], "not both"),
        ("[{name: A, path: PA, variables: {tas: nope}}]", [], "has no variable 'nope'"),
        ("[{name: A, path: PA, weight: 0}]", [], "greater than 0"),
        ("[{name: A, path: PA, regrid: cubic}]", [], "bilinear"),
        ("[{name: D, path: PD}]", [], "several steps in one month"),
    ],
    ids=["dup", "grid", "path", "variable", "weight", "regrid", "daily"],
)
def test_bad_source_config_is_one_line_exit_2(stores, tmp_path, capsys, sources, extra, message):
    daily = tmp_path / "d.nc"
    xr.Dataset(
        {"tas": (("time", "lat", "lon"), np.ones((40, 2, 3), "float32"), {"units": "K"})},
        coords={
            "time": xr.date_range("2000-01-01", periods=40, freq="D", use_cftime=True),
            "lat": [0.0, 10.0],
            "lon": [0.0, 10.0, 20.0],
        },
    ).to_netcdf(daily)
    sources = sources.replace("PA", stores["A"]).replace("PB", stores["B"])
    sources = sources.replace("PD", str(daily))
    sets = [f"data.sources={sources}", *(e.replace("PB", stores["B"]) for e in extra)]
    config = tmp_path / "c.yaml"
    config.write_text("trainer:\n  max_epochs: 1\n")
    argv = ["pretrain", "--config", str(config), "--out", str(tmp_path / "run")]
    argv += [a for s in sets for a in ("--set", s)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("climatune: error: ")
    assert message in err[0]
    assert not (tmp_path / "run").exists()


def test_source_settings_need_sources():
    for key in (
        "data.source_normalization=per_source",
        "data.grid={lat: [0, 10, 5], lon: [0, 10, 5]}",
    ):
        with pytest.raises(Exception, match="need data.sources"):
            load_config(None, [key])
    assert load_config(None, []).data.sources is None  # data.path alone: as before
