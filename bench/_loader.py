"""Loader benchmarks: the streaming loader against a naive one, raw Zarr and the training step.

The store is synthetic: 4 variables on 64x128, monthly, Zarr chunks of 12 steps, and the
same data as a set of NetCDF files; the ``regrid`` rows read the Zarr store as a
``data.sources`` archive regridded on the fly to a grid offset by half a cell. Samples are shuffled; the loader is the training one
(:class:`~climatune.training.datamodule.ClimateDataModule` with ``in_memory="never"``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr
from _common import DATA, Sizes, bench_config, interleave, median, row, synthetic_store

from climatune.config import Config, config_from_dict
from climatune.data.normalize import Normalizer
from climatune.data.samples import fit_normalizer, normalization_mode
from climatune.data.view import TaskView, build_view
from climatune.training.datamodule import ClimateDataModule

__all__ = ["netcdf_set", "loader"]

GRID = (64, 128)
GPU_PEAK = 400e12  # bf16 FLOP/s of the GPU the loader should keep busy


def netcdf_set(store: Path, files: int) -> Path:
    """The store's data as ``files`` NetCDF files (split along time), written once."""
    folder = DATA / f"{store.stem}-nc{files}"
    if not folder.exists():
        ds = xr.open_zarr(store)
        tmp = folder.with_suffix(".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        edges = np.linspace(0, ds.sizes["time"], files + 1).astype(int)
        for i in range(files):
            ds.isel(time=slice(edges[i], edges[i + 1])).to_netcdf(tmp / f"part-{i:03d}.nc")
        tmp.rename(folder)
    return folder


def _timed(fn: Callable[[], int]) -> tuple[float, float]:
    """(items per wall second, items per CPU second of this process) of ``fn() -> items``."""
    wall, cpu = time.perf_counter(), time.process_time()
    n = fn()
    return n / (time.perf_counter() - wall), n / max(time.process_time() - cpu, 1e-9)


def _stream_rate(cfg: Config, view: TaskView, norm: Normalizer, epoch: int) -> tuple[float, float]:
    """Samples/s of one shuffled epoch of the training loader, streaming."""
    data = ClimateDataModule(
        view,
        norm,
        batch_size=cfg.data.batch_size,
        num_workers=cfg.data.num_workers,
        seed=cfg.seed,
        in_memory="never",
        shuffle_buffer_chunks=cfg.data.shuffle_buffer_chunks,
    )
    loader = data.train_dataloader()
    loader.sampler.set_epoch(epoch)
    return _timed(lambda: sum(int(batch["anchor"].numel()) for batch in loader))


def _raw_rate(store: Path, names: list[str], steps: np.ndarray) -> tuple[float, float]:
    """Steps/s of reading the split's steps chunk by chunk with zarr alone."""
    group = zarr.open_group(str(store), mode="r")
    arrays = [group[n] for n in names]
    chunk = arrays[0].chunks[0]
    first, last = int(steps[0]) // chunk * chunk, int(steps[-1]) + 1

    def read() -> int:
        for array in arrays:
            for c0 in range(first, last, chunk):
                array[c0 : c0 + chunk]
        return last - int(steps[0])

    return _timed(read)


def _naive_rate(view: TaskView, norm: Normalizer, n: int, seed: int) -> tuple[float, float]:
    """Samples/s of ``ds.isel(time=i)[vars].values`` per sample, shuffled, normalised."""
    ds = view.fields
    anchors = np.random.default_rng(seed).permutation(view.anchors["train"])[:n]
    mean = np.array([norm.scale(v)[0] for v in view.inputs], dtype=np.float32)[:, None, None]
    std = np.array([norm.scale(v)[1] for v in view.inputs], dtype=np.float32)[:, None, None]

    def read() -> int:
        for a in anchors:
            x = ds[view.inputs].isel(time=int(a)).to_array().values
            y = ds[view.targets].isel(time=int(view.target_index(int(a)))).to_array().values
            np.nan_to_num((x - mean) / std), (y - mean) / std
        return len(anchors)

    return _timed(read)


def regrid_config(cfg: Config, view: TaskView) -> Config:
    """``cfg`` read as a one-source archive regridded on the fly to a grid offset by half a
    cell (bilinear; conservative for the first variable): the loader with regridding."""
    raw = cfg.model_dump(mode="json")
    lat, lon = view.fields.lat.values, view.fields.lon.values
    dlat, dlon = float(np.diff(lat).mean()), float(np.diff(lon).mean())
    first = view.inputs[0].removesuffix("500")
    raw["data"]["sources"] = [
        {"name": "store", "path": raw["data"].pop("path"), "regrid": {first: "conservative"}}
    ]
    raw["data"]["grid"] = {
        "lat": [float(lat[0]) + dlat / 2, float(lat[-1]) - dlat / 2, dlat],
        "lon": [float(lon[0]) + dlon / 2, float(lon[-1]) + dlon / 2, dlon],
    }
    return config_from_dict(raw, "the regrid benchmark")


def loader(sz: Sizes, train_rate: float, flops_per_sample: float) -> list[dict[str, Any]]:
    """Rows of the loader benchmark.

    Parameters
    ----------
    train_rate
        Samples/s the training step consumes on this CPU at 64x128 with the default model.
    flops_per_sample
        Training FLOPs per 64x128 sample, for the rate a GPU would need.
    """
    store = synthetic_store("monthly", sz.loader_years, GRID)
    nc = netcdf_set(store, sz.nc_files)
    cfg = bench_config(store, sz, years=sz.loader_years)
    view = build_view(cfg.data, cfg.task)
    norm = fit_normalizer(view, normalization_mode(view, cfg.data.normalization))
    nc_cfg = bench_config(str(nc / "*.nc"), sz, years=sz.loader_years)
    nc_view = build_view(nc_cfg.data, nc_cfg.task)
    rg_cfg = regrid_config(cfg, view)
    rg_view = build_view(rg_cfg.data, rg_cfg.task)
    rg_norm = fit_normalizer(rg_view, normalization_mode(rg_view, rg_cfg.data.normalization))
    names = [v.removesuffix("500") for v in view.inputs]  # zg500 is level 500 of zg
    steps = view.steps("train")
    got = interleave(
        {
            "naive": lambda r: _naive_rate(view, norm, sz.naive_samples, r),
            "raw": lambda r: _raw_rate(store, names, steps),
            "zarr": lambda r: _stream_rate(cfg, view, norm, r),
            "netcdf": lambda r: _stream_rate(cfg, nc_view, norm, r),
            "regrid": lambda r: _stream_rate(rg_cfg, rg_view, rg_norm, r),
        },
        sz.rounds + 1,
    )
    (naive, naive_c), (raw, raw_c), (z, z_c), (n, _), (rg, _) = (
        (median([w for w, _ in got[k]]), median([c for _, c in got[k]]))
        for k in ("naive", "raw", "zarr", "netcdf", "regrid")
    )
    gpu_rate = GPU_PEAK / flops_per_sample
    return [
        row("loader_zarr_vs_naive", z / naive, "ratio", 20.0),
        row("loader_netcdf_vs_naive", n / naive, "ratio", 20.0),
        row("loader_zarr_vs_raw_zarr", z / raw, "ratio", 0.7),
        row("loader_zarr_vs_train_step", z / train_rate, "ratio", 10.0),
        row("loader_netcdf_vs_train_step", n / train_rate, "ratio", 10.0),
        row("loader_regrid_vs_naive", rg / naive, "ratio", 20.0),
        row("loader_regrid_vs_train_step", rg / train_rate, "ratio", 10.0),
        row("loader_regrid_vs_zarr", rg / z, "ratio (the same store, regridded on the fly)"),
        row("loader_regrid_samples_per_s", rg, "samples/s (1 process)"),
        row("loader_zarr_vs_raw_zarr_cpu_time", z_c / raw_c, "ratio of per-CPU-second rates"),
        row("loader_zarr_vs_naive_cpu_time", z_c / naive_c, "ratio of per-CPU-second rates"),
        row("loader_zarr_samples_per_s", z, "samples/s (1 process)"),
        row("loader_netcdf_samples_per_s", n, "samples/s (1 process)"),
        row("loader_raw_zarr_steps_per_s", raw, "steps/s (chunk by chunk)"),
        row("loader_naive_samples_per_s", naive, "samples/s"),
        row("train_step_samples_per_s_64x128", train_rate, "samples/s (this CPU)"),
        row("loader_gpu_needed_samples_per_s", gpu_rate, "samples/s at 400 TFLOP/s"),
        row("loader_cores_for_gpu", gpu_rate / z, "loader cores at 400 TFLOP/s", better="lower"),
    ]
