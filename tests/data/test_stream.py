"""TaskStream: the same samples as TaskSamples, read chunk by chunk, sharded and shuffled."""

from __future__ import annotations

from collections import Counter

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import climatune.data.stream as stream_mod
from climatune.config import load_config
from climatune.data.samples import TaskSamples, fit_normalizer, static_channels
from climatune.data.stream import TaskStream, chunk_starts
from climatune.data.view import build_view
from climatune.testing import create_test_data
from climatune.training.datamodule import ClimateDataModule
from climatune.training.task import ClimateTask


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Ten monthly years with a NaN-masked sst and an index series, as NetCDF."""
    path = tmp_path_factory.mktemp("stream") / "m.nc"
    ds = create_test_data(ntime=120, nlat=8, nlon=16, index=True)
    ds["sst"] = ds.tas.where(ds.lat < 40).assign_attrs(units="K")
    ds.to_netcdf(path)
    return path


def _view(path, *sets):
    base = [
        f"data.path={path}",
        "data.variables=[tas, sst]",
        "data.split.train=[[2000, 2002], [2004, 2005]]",  # two blocks: samples must not cross
        "data.split.val=[2006, 2007]",
        "data.split.test=[2008, 2009]",
    ]
    cfg = load_config(None, base + list(sets))
    view = build_view(cfg.data, cfg.task)
    return view, fit_normalizer(view)


def _by_anchor(items):
    out = {}
    for item in items:
        anchors = item["anchor"].reshape(-1)
        for i, a in enumerate(anchors.tolist()):
            assert a not in out, f"anchor {a} yielded twice"
            out[a] = {k: (v[i] if item["anchor"].dim() else v) for k, v in item.items()}
    return out


def _assert_same(stream_items, ref: TaskSamples):
    got = _by_anchor(stream_items)
    assert sorted(got) == sorted(ref.anchors.tolist())
    for i, a in enumerate(ref.anchors.tolist()):
        want = ref[i]
        assert torch.equal(got[a]["fields"], want["fields"])
        torch.testing.assert_close(got[a]["target"], want["target"], rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize(
    "sets",
    [
        ["task.history=3", "task.lead=2"],
        ["task.kind=downscale", "task.factor=2", "data.variables=[tas]"],
        ["task.kind=index", "task.index.variable=nino34", "data.variables=[tas]"],
        ["task.kind=reconstruct"],
        ["data.targets=[sst]", "task.history=2"],
    ],
    ids=["forecast", "downscale", "index", "reconstruct", "other-targets"],
)
def test_stream_yields_exactly_the_samples_of_task_samples(archive, sets):
    view, norm = _view(archive, *sets)
    ref = TaskSamples(view, "train", norm, seed=5)
    stream = TaskStream(view, "train", norm, chunk_steps=7, buffer_chunks=2, seed=5)
    _assert_same(list(stream), ref)
    assert len(stream) == len(ref)


def test_batched_stream_with_two_workers_has_no_duplicates_or_omissions(archive):
    view, norm = _view(archive, "task.history=2")
    ref = TaskSamples(view, "train", norm)
    stream = TaskStream(view, "train", norm, batch_size=5, chunk_steps=7, num_workers=2)
    loader = DataLoader(stream, batch_size=None, num_workers=2)
    batches = list(loader)
    assert len(batches) == len(loader) == len(stream)
    assert all(
        b["fields"].shape[1:] == (2, 2, 8, 16) and b["fields"].shape[0] <= 5 for b in batches
    )
    _assert_same(batches, ref)


def test_order_depends_on_seed_and_epoch(archive):
    view, norm = _view(archive)

    def order(seed, epoch):
        stream = TaskStream(view, "train", norm, chunk_steps=7, buffer_chunks=2, seed=seed)
        stream.set_epoch(epoch)
        return [int(item["anchor"]) for item in stream]

    first = order(0, 0)
    assert order(0, 0) == first
    assert order(0, 1) != first and order(1, 0) != first
    assert sorted(order(0, 1)) == sorted(first)
    unshuffled = TaskStream(view, "train", norm, chunk_steps=7, shuffle=False)
    assert [int(item["anchor"]) for item in unshuffled] == view.anchors["train"].tolist()


def test_reads_stay_inside_one_block_and_follow_the_store_chunks(archive, monkeypatch):
    view, norm = _view(archive, "task.history=3", "task.lead=2")
    anchors = view.anchors["train"]
    blocks = np.split(anchors, np.flatnonzero(np.diff(anchors) != 1) + 1)
    assert len(blocks) == 2
    spans = [(b[0] - view.history + 1, b[-1] + view.lead) for b in blocks]  # steps of each block
    windows = []
    real = stream_mod.read_window

    def spy(view_, norm_, window, **kw):
        windows.append((window.start, window.stop))
        return real(view_, norm_, window, **kw)

    monkeypatch.setattr(stream_mod, "read_window", spy)
    starts = chunk_starts(view, 12)
    stream = TaskStream(view, "train", norm, chunk_steps=12)
    assert len(list(stream)) == anchors.size
    for start, stop in windows:
        assert any(lo <= start and stop - 1 <= hi for lo, hi in spans), (start, stop)
        # a window starts at a chunk start (or a block start), so chunks are read once
        assert start in starts or start in [lo for lo, _ in spans]
    inside = np.unique(np.concatenate([np.arange(a, b) for a, b in windows]))
    assert sum(b - a for a, b in windows) <= inside.size + len(windows) * (
        view.history - 1 + view.lead
    )


def test_ranks_get_equal_disjoint_shares(archive):
    view, norm = _view(archive, "task.history=2")
    stream = TaskStream(view, "train", norm, chunk_steps=7, batch_size=4)
    n = view.anchors["train"].size
    shares = [
        np.concatenate(stream.plan(3, rank, 2, worker, 2)) for rank in (0, 1) for worker in (0, 1)
    ]
    per_rank = [np.concatenate(shares[:2]), np.concatenate(shares[2:])]
    assert per_rank[0].size == per_rank[1].size == -(-n // 2)
    counts = Counter(np.concatenate(per_rank).tolist())
    assert set(counts) == set(view.anchors["train"].tolist())
    assert sum(c - 1 for c in counts.values()) == 2 * -(-n // 2) - n  # only the padding repeats


def test_default_chunks_follow_the_dask_chunks(archive):
    view, norm = _view(archive)
    chunked = view.fields.chunk({"time": 12})
    view.fields, view.coarse = chunked, None
    starts = chunk_starts(view)
    assert starts[0] == 0 and np.all(starts % 12 == 0)


def _task(view, norm):
    names, static = static_channels(view)
    from climatune.training.run import new_net, residual_index

    cfg = load_config(None, ["model.width=4", "model.depth=1"])
    net = new_net(cfg, view, len(names))
    weight = torch.from_numpy(view.weights().values.astype("float32"))
    net.set_residual(residual_index(view, True))
    return ClimateTask(net, torch.from_numpy(static), weight)


def test_datamodule_streams_when_asked_and_lightning_sets_the_epoch(archive, tmp_path):
    view, norm = _view(archive)
    assert isinstance(
        ClimateDataModule(view, norm, in_memory="always").samples("train"), TaskSamples
    )
    assert isinstance(ClimateDataModule(view, norm).samples("train"), TaskSamples)  # small: auto
    data = ClimateDataModule(view, norm, batch_size=8, in_memory="never")
    assert isinstance(data.samples("train"), TaskStream)
    seen: list[list[int]] = []

    class Record(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            seen.append([])

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            seen[-1].extend(batch["anchor"].tolist())

    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Record()],
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
    )
    trainer.fit(_task(view, norm), datamodule=data)
    assert len(seen) == 2 and seen[0] != seen[1]
    assert sorted(seen[0]) == sorted(seen[1]) == sorted(view.anchors["train"].tolist())


def test_reads_agree_whatever_the_dask_chunks(archive):
    view, norm = _view(archive, "task.history=2")
    ref = TaskSamples(view, "train", norm)
    view.fields, view._inputs_cache = view.fields.chunk({"time": 5, "lat": 3, "lon": 7}), None
    chunked = TaskSamples(view, "train", norm)  # whole blocks, cut blocks and spatial blocks
    np.testing.assert_array_equal(chunked.fields, ref.fields)
    np.testing.assert_array_equal(chunked.targets, ref.targets)
    stream = TaskStream(view, "train", norm, batch_size=3, buffer_chunks=1)
    _assert_same(list(stream), ref)


def test_zarr_reads_merge_neighbouring_chunks_and_match_netcdf(archive, tmp_path, monkeypatch):
    import xarray as xr

    import climatune.data.samples as samples_mod

    store = tmp_path / "m.zarr"
    xr.open_dataset(archive).to_zarr(store, encoding={"tas": {"chunks": (6, 8, 16)}})
    merged = []
    real = samples_mod._merged_read

    def spy(graph, keys):
        out = real(graph, keys)
        merged.append(out is not None)
        return out

    monkeypatch.setattr(samples_mod, "_merged_read", spy)
    sets = ["data.variables=[tas]", "task.history=2"]
    (zview, norm), (nview, _) = _view(store, *sets), _view(archive, *sets)
    ref = TaskSamples(nview, "train", norm)
    np.testing.assert_array_equal(TaskSamples(zview, "train", norm).fields, ref.fields)
    _assert_same(list(TaskStream(zview, "train", norm, chunk_steps=15, batch_size=4)), ref)
    assert any(merged)  # whole chunks of the store were read in one call
