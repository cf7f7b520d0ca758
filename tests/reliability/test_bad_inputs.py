"""A catalogue of bad inputs, one line each, across every command.

Each case builds its argv in a fresh directory (``Workspace``) next to a shared tiny
archive and pretrained model, runs ``climatune.cli.main`` in-process, and checks what
DESIGN.md promises for a user error: exit code 2, exactly one stderr line
``climatune: error: ...`` that names the problem, no traceback, and no output: nothing
in the case's directory or the shared inputs changes (so no ``--out`` is created, an
existing one is left as it was, and no ``.NAME.tmp-PID`` leftover remains).

To add a case, append one ``Case(id, argv_builder, expected_substring)`` to ``CASES``
(a tuple of substrings when the message must name several things).
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from safetensors.torch import load_file, save_file

from climatune.cli import main
from climatune.report.collect import PNG_SIGNATURE
from climatune.testing import create_test_data, tiny_config
from climatune.utils.atomic import LOCK
from tests.reliability.conftest import base_config, leftovers, tree, write_config


def dataset(*, ntime: int = 96, nlat: int = 8, nlon: int = 16, **kw) -> xr.Dataset:
    """The tiny archive's contents (tas, pr and a NaN-masked sst), monthly from 2000."""
    ds = create_test_data(ntime=ntime, nlat=nlat, nlon=nlon, **kw)
    rng = np.random.default_rng(0)
    ds["tas"] = ds.tas + rng.normal(0, 0.5, ds.tas.shape).astype("f4")
    sst = (ds.tas - 5).where(ds.lat < 40)
    ds["sst"] = sst.assign_attrs(units="K", standard_name="sea_surface_temperature")
    return ds


@dataclass
class Workspace:
    """A fresh directory for one case, plus the session's shared inputs."""

    tmp: Path
    archive: Path
    model: Path
    config: Path

    def p(self, name: str) -> str:
        """A path in the case directory (not created)."""
        return str(self.tmp / name)

    def file(self, name: str, content: str | bytes = "not a directory\n") -> str:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return str(path)

    def dir(self, name: str) -> str:
        (self.tmp / name).mkdir(parents=True)
        return self.p(name)

    def nc(self, name: str, ds: xr.Dataset | None = None, **kw) -> str:
        """Write ``ds`` (default: the tiny archive's data) as NetCDF; returns the path."""
        (dataset() if ds is None else ds).to_netcdf(self.tmp / name, **kw)
        return self.p(name)

    def cfg(self, *sets: str, text: str | None = None, data: str | None = None) -> str:
        """The shared model's config with ``--set``-style changes, written to cfg.yaml.

        ``data`` replaces ``data.path``; ``text`` is written as it is instead.
        """
        path = self.tmp / "cfg.yaml"
        if text is not None:
            path.write_text(text)
            return str(path)
        extra = (f"data.path={data}",) if data else ()
        return str(write_config(path, base_config(self.archive), *extra, *sets))

    def truncated(self, name: str, **kw) -> str:
        path = Path(self.nc(name, **kw))
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return str(path)


Builder = Callable[[Workspace], list[str]]


@dataclass(frozen=True)
class Case:
    id: str
    argv: Builder
    expect: str | tuple[str, ...]  # every part must be in the message


# ------------------------------------------------------------------ bad data builders


def _curvilinear(w: Workspace) -> str:
    ds = dataset()
    lat2d, lon2d = np.meshgrid(ds.lat.values, ds.lon.values, indexing="ij")
    ds = ds.rename({"lat": "y", "lon": "x"}).drop_vars(["y", "x"])
    ds = ds.assign_coords(
        lat=(
            ("y", "x"),
            lat2d + 0.1 * lon2d / 360,
            {"units": "degrees_north", "standard_name": "latitude"},
        ),
        lon=(("y", "x"), lon2d, {"units": "degrees_east", "standard_name": "longitude"}),
    )
    return w.nc("curvi.nc", ds)


def _zarr_without_arrays(w: Workspace) -> str:
    xr.Dataset().to_zarr(w.tmp / "bare.zarr", zarr_format=2)
    return w.p("bare.zarr")


def _duplicate_times(w: Workspace) -> str:
    ds = dataset()
    time = ds.time.values.copy()
    time[5] = time[4]
    return w.nc("dup.nc", ds.assign_coords(time=time))


def _missing_time_stamp(w: Workspace) -> str:
    ds = dataset()
    days = np.arange(ds.time.size, dtype=float) * 30.0
    days[5] = np.nan  # a stamp lost when the file was written: the decoder would say 2000-01-01
    time = ("time", days, {"units": "days since 2000-01-01", "calendar": "360_day"})
    ds = ds.assign_coords(time=time)
    return w.nc("nat.nc", ds, encoding={"time": {"_FillValue": -9999.0}})


def _nan_coordinate(w: Workspace, axis: str, **kw) -> str:
    ds = dataset(**kw)
    values = ds[axis].values.astype(float)
    values[1] = np.nan
    return w.nc(f"nan-{axis}.nc", ds.assign_coords({axis: (axis, values, ds[axis].attrs)}))


def _corrupt_zarr(w: Workspace, zarr_format: int) -> str:
    store = w.tmp / f"v{zarr_format}.zarr"
    dataset().chunk({"time": 12}).to_zarr(store, zarr_format=zarr_format)
    chunk = store / "tas" / ("3.0.0" if zarr_format == 2 else "c/3/0/0")
    chunk.write_bytes(b"not a compressed chunk" * 4)  # the fourth year, 2003
    return str(store)


def _corrupt_netcdf(w: Workspace) -> str:
    ds = dataset()[["tas"]]  # noisy, so that its compressed chunks fill most of the file
    path = Path(w.nc("corrupt.nc", ds, encoding={"tas": {"zlib": True, "chunksizes": (12, 8, 16)}}))
    data = bytearray(path.read_bytes())
    middle = len(data) * 3 // 5
    data[middle : middle + 2000] = b"\xab" * 2000
    path.write_bytes(bytes(data))
    return str(path)


def _unsorted_times(w: Workspace) -> str:
    ds = dataset()
    return w.nc("unsorted.nc", ds.isel(time=[*range(10), 11, 10, *range(12, ds.time.size)]))


def _overlapping(w: Workspace) -> str:
    ds = dataset()
    return f"[{w.nc('a.nc', ds.isel(time=slice(0, 60)))}, {w.nc('b.nc', ds.isel(time=slice(48, None)))}]"


def _mixed_calendars(w: Workspace) -> str:
    first = dataset(ntime=48, calendar="noleap")
    second = dataset(ntime=48, calendar="360_day", start="2004-01-01")
    return f"[{w.nc('noleap.nc', first)}, {w.nc('360day.nc', second)}]"


def _all_nan(w: Workspace) -> str:
    ds = dataset()
    ds["sst"] = ds.sst * np.nan
    return w.nc("allnan.nc", ds)


def _with_inf(w: Workspace) -> str:
    ds = dataset()
    ds["tas"] = ds.tas.where(~((ds.time == ds.time[30]) & (ds.lat == ds.lat[2])), np.inf)
    return w.nc("inf.nc", ds)


def _levels(w: Workspace) -> str:
    return w.nc("levels.nc", dataset(nlevel=3))


def _index_other_grid(w: Workspace) -> list[str]:
    other = w.nc("coarse.nc", dataset(nlat=4, nlon=8))
    return ["task.kind=index", f"task.index={{variable: sst, path: {other}}}"]


def _index_other_calendar(w: Workspace) -> list[str]:
    series = dataset(calendar="360_day", index=True)[["nino34"]]
    return ["task.kind=index", f"task.index={{variable: nino34, path: {w.nc('nino.nc', series)}}}"]


def _in_celsius(w: Workspace, name: str, units: str = "degC") -> str:
    """``tas`` in °C, labelled ``units`` (degC, or an incompatible unit such as m)."""
    ds = dataset()
    ds["tas"] = (ds.tas - 273.15).assign_attrs(units=units, standard_name="air_temperature")
    return w.nc(name, ds)


def _mislabelled(w: Workspace, name: str) -> str:
    """``tas`` in °C but labelled K: same name and units, a shifted distribution."""
    ds = dataset()
    ds["tas"] = (ds.tas - 273.15).assign_attrs(ds.tas.attrs)
    return w.nc(name, ds)


def _anomalies_wider(w: Workspace, name: str) -> str:
    """``tas`` with its anomalies from the monthly climatology 20 times wider."""
    ds = dataset()
    clim = ds.tas.groupby("time.month").mean("time")
    wide = clim.sel(month=ds.time.dt.month).drop_vars("month") + 20 * (
        ds.tas - clim.sel(month=ds.time.dt.month).drop_vars("month")
    )
    ds["tas"] = wide.astype("f4").assign_attrs(ds.tas.attrs)
    return w.nc(name, ds)


def _global_parent(w: Workspace) -> str:
    """A pretrained model of the tiny archive normalised globally (one mean and std)."""
    from climatune.workflows.pretraining import pretrain

    sets = ("trainer.max_epochs=1", "data.normalization=global")
    return str(pretrain(tiny_config(w.archive, *sets), out=w.tmp / "global-parent"))


def _doctored(w: Workspace, weights=None, meta=None, climatology=None) -> str:
    """A copy of the shared model, its tensors, its climatology and/or its JSON changed."""
    model = Path(shutil.copytree(w.model / "model", w.tmp / "doctored"))
    for name, change in (("weights", weights), ("normalization", climatology)):
        if change is not None:
            tensors = load_file(model / f"{name}.safetensors")
            change(tensors)
            save_file(tensors, model / f"{name}.safetensors")
    if meta is not None:
        data = json.loads((model / "climatune.json").read_text())
        meta(data)
        (model / "climatune.json").write_text(json.dumps(data))
    return str(model)


def _first_float(tensors: dict) -> str:
    return next(k for k, v in tensors.items() if v.is_floating_point() and v.dim() > 1)


def _nan_weight(t: dict) -> None:
    t[_first_float(t)][0] = float("nan")


def _int_weight(t: dict) -> None:
    t[_first_float(t)] = t[_first_float(t)].to(torch.int32)


def _nan_climatology(t: dict) -> None:
    t["tas"][0, 0, 0] = float("nan")


def _int_climatology(t: dict) -> None:
    t["tas"] = t["tas"].to(torch.int32)


def _static_shape(t: dict) -> None:
    t["__static__"] = t["__static__"][:, :-1].contiguous()


def _std(value: float) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        data["normalization"]["std"]["tas"] = value

    return change


def _predict_with(model: Callable[[Workspace], str]) -> Builder:
    return lambda w: ["predict", model(w), "--input", str(w.archive), "--output", w.p("p.nc")]


def _resume_dir(w: Workspace) -> str:
    run = w.dir("half-run")
    (Path(run) / "config.yaml").write_text("seed: 0\n")
    return run


def _space(w: Workspace, text: str) -> str:
    return w.file("space.yaml", text)


# ------------------------------------------------------- the user's files and runs builders


def _run_copy(w: Workspace, name: str = "pre") -> str:
    """A copy of the shared pretrained run (stamped by ``climatune pretrain``)."""
    shutil.copytree(w.model, w.tmp / name)
    return w.p(name)


def _locked_run(w: Workspace) -> str:
    """A pretrain run that a live process (PID 1, on this host) is writing now."""
    run = _run_copy(w)
    (Path(run) / LOCK).write_text(f"1 {socket.gethostname()}\n")
    return run


def _link(w: Workspace, name: str, target: str | Path) -> str:
    (w.tmp / name).symlink_to(target)
    return w.p(name)


def _respelled(path: str | Path) -> str:
    """``path`` spelled another way: ``DIR/./NAME/../NAME/``."""
    path = Path(path)
    return f"{path.parent}/./{path.name}/../{path.name}/"


def _data_in(w: Workspace, folder: str) -> str:
    """A copy of the tiny archive inside ``folder``; returns its path."""
    (w.tmp / folder).mkdir()
    shutil.copy(w.archive, w.tmp / folder / "tiny.nc")
    return w.p(f"{folder}/tiny.nc")


def _index_in(w: Workspace, folder: str) -> list[str]:
    """An index task whose Niño 3.4 series is a file inside ``folder``."""
    w.dir(folder)
    series = w.nc(f"{folder}/nino.nc", dataset(index=True)[["nino34"]])
    return ["task.kind=index", f"task.index={{variable: nino34, path: {series}}}"]


def _zarr_data(w: Workspace) -> str:
    dataset().to_zarr(w.tmp / "data.zarr", zarr_format=2)
    return w.p("data.zarr")


def _bomb(levels: int = 7) -> str:
    """A YAML "billion laughs" mapping on one line: ``levels`` anchors, each nine aliases of
    the one before, so a few hundred bytes expand to 9**levels values."""
    items = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    items += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "{" + ", ".join(items) + "}"


def _deep(depth: int = 5000) -> str:
    return "[" * depth + "]" * depth


def _deep_artifact(w: Workspace) -> str:
    """A model directory whose climatune.json is nested thousands of levels deep."""
    model = Path(w.dir("deep-model"))
    shutil.copy(w.model / "model" / "weights.safetensors", model / "weights.safetensors")
    (model / "climatune.json").write_text(_deep(100_000))
    return str(model)


def _report_dir(w: Workspace, **links: str | Path) -> str:
    """A folder whose only entries are symbolic links ``name -> target``."""
    folder = Path(w.dir("rundir"))
    for name, target in links.items():
        (folder / name).symlink_to(target)
    return str(folder)


def _user_report(w: Workspace) -> list[str]:
    """An evaluate folder where the user keeps notes in a file named report.html."""
    _run_copy(w, "ev/run")
    return ["report", str(Path(w.file("ev/report.html", "my notes")).parent)]


def _outside(w: Workspace) -> Path:
    """A PNG and a JSON file in another folder, not the run's."""
    other = Path(w.dir("elsewhere"))
    (other / "secret.png").write_bytes(PNG_SIGNATURE + b"\0" * 64)
    row = {"model": "finetuned", "variable": "tas", "metric": "rmse", "value": 0.3}
    (other / "secret.json").write_text(json.dumps([row]))
    return other


# -------------------------------------------------------------------------- catalogue


def _pretrain(*sets: str) -> Builder:
    return lambda w: ["pretrain", "--config", w.cfg(*sets), "--out", w.p("run")]


def _pretrain_on(make: Callable[[Workspace], str], *sets: str) -> Builder:
    return lambda w: ["pretrain", "--config", w.cfg(*sets, data=make(w)), "--out", w.p("run")]


def _finetune(*sets: str, data: Callable[[Workspace], str] | None = None) -> Builder:
    def build(w: Workspace) -> list[str]:
        cfg = w.cfg(*sets, data=data(w) if data else None)
        return ["finetune", "--config", cfg, "--from", str(w.model), "--out", w.p("ft")]

    return build


def _tune(space: str, *flags: str) -> Builder:
    def build(w: Workspace) -> list[str]:
        head = ["tune", "--config", w.cfg(), "--space", _space(w, space), "--trials", "1"]
        return [*head, "--folds", "2", *flags, "--out", w.p("tune")]

    return build


# One line per case, so the catalogue is easy to scan and to extend.
# fmt: off
CASES = [
    # data inspect: files that are not gridded climate data, or have a broken time axis
    Case("inspect-missing-path", lambda w: ["data", "inspect", w.p("nope.nc")], "file not found"),
    Case("inspect-not-netcdf", lambda w: ["data", "inspect", w.file("notes.nc", "t,tas\n0,280\n")], "neither NetCDF nor Zarr"),
    Case("inspect-empty-file", lambda w: ["data", "inspect", w.file("empty.nc", b"")], "is empty (0 bytes)"),
    Case("inspect-truncated-netcdf4", lambda w: ["data", "inspect", w.truncated("cut.nc")], "truncated"),
    Case("inspect-truncated-netcdf3", lambda w: ["data", "inspect", w.truncated("cut3.nc", format="NETCDF3_64BIT")], "truncated"),
    Case("inspect-curvilinear-grid", lambda w: ["data", "inspect", _curvilinear(w)], "curvilinear grid"),
    Case("inspect-empty-zarr-store", lambda w: ["data", "inspect", w.dir("empty.zarr")], "is empty (no zarr.json or .zgroup)"),
    Case("inspect-zarr-without-arrays", lambda w: ["data", "inspect", _zarr_without_arrays(w)], "empty (no arrays)"),
    Case("inspect-duplicate-times", lambda w: ["data", "inspect", _duplicate_times(w)], "duplicate times"),
    Case("inspect-missing-time-stamp", lambda w: ["data", "inspect", _missing_time_stamp(w)], "has 1 missing time stamp(s) in 'time' (the first at position 5, after 2000-05-01"),
    Case("inspect-nan-latitude", lambda w: ["data", "inspect", _nan_coordinate(w, "lat")], "1 non-finite value(s) in its 'lat' coordinate"),
    Case("inspect-nan-longitude", lambda w: ["data", "inspect", _nan_coordinate(w, "lon")], "1 non-finite value(s) in its 'lon' coordinate"),
    Case("inspect-nan-level", lambda w: ["data", "inspect", _nan_coordinate(w, "level", nlevel=3)], "1 non-finite value(s) in its 'level' coordinate"),
    Case("inspect-unsorted-times", lambda w: ["data", "inspect", _unsorted_times(w)], "unsorted times"),
    # data synth: flags out of range, an output that cannot be made
    Case("synth-grid-nonsense", lambda w: ["data", "synth", "--out", w.p("s.zarr"), "--years", "1", "--grid", "big"], "is not NLATxNLON"),
    Case("synth-grid-too-small", lambda w: ["data", "synth", "--out", w.p("s.zarr"), "--years", "1", "--grid", "4x4"], "out of range"),
    Case("synth-years-zero", lambda w: ["data", "synth", "--out", w.p("s.zarr"), "--years", "0", "--grid", "8x16"], "--years 0 is out of range"),
    Case("synth-years-not-a-number", lambda w: ["data", "synth", "--out", w.p("s.zarr"), "--years", "ten"], "invalid int value: 'ten'"),
    Case("synth-out-under-a-file", lambda w: ["data", "synth", "--out", w.file("f") + "/s.zarr", "--years", "1", "--grid", "8x16"], "is a file, not a directory"),
    # config files and --set
    Case("config-missing", lambda w: ["pretrain", "--config", w.p("nope.yaml"), "--out", w.p("run")], "does not exist"),
    Case("config-yaml-syntax-error", lambda w: ["pretrain", "--config", w.cfg(text="seed: 1\ndata:\n  variables: [tas, sst\nmodel: {width: 8}\n"), "--out", w.p("run")], "line 4"),
    Case("config-unknown-key", _pretrain("trainer.max_epoch=1"), "did you mean 'trainer.max_epochs'"),
    Case("config-wrong-type", _pretrain("trainer.max_epochs=many"), "'trainer.max_epochs'"),
    Case("config-zero-learning-rate", _pretrain("optim.lr=0"), "learning rate must be positive"),
    Case("config-negative-learning-rate", _pretrain("optim.lr=-0.001"), "learning rate must be positive"),
    Case("config-python-yaml-tag", lambda w: ["pretrain", "--config", w.cfg(text="seed: !!python/object/apply:os.getpid []\n"), "--out", w.p("run")], "not valid YAML"),
    Case("config-nan-learning-rate", _pretrain("optim.lr=.nan"), ("'optim.lr'", "Input should be a finite number")),
    Case("config-infinite-learning-rate", _pretrain("optim.lr=.inf"), ("'optim.lr'", "Input should be a finite number")),
    Case("config-learning-rate-above-one", _pretrain("optim.lr=5"), "positive and at most 1"),
    Case("config-nan-weight-decay", _pretrain("optim.weight_decay=.nan"), ("'optim.weight_decay'", "Input should be a finite number")),
    Case("config-nan-dropout", _pretrain("model.dropout=.nan"), ("'model.dropout'", "Input should be a finite number")),
    Case("config-nan-mask-ratio", _pretrain("task.mask_ratio=.nan"), ("'task.mask_ratio'", "Input should be a finite number")),
    Case("config-nan-train-fraction", _pretrain("data.train_fraction=.nan"), ("'data.train_fraction'", "Input should be a finite number")),
    Case("config-nan-gradient-clip", _pretrain("trainer.gradient_clip_val=.nan"), ("'trainer.gradient_clip_val'", "Input should be a finite number")),
    Case("config-nan-region-bound", _pretrain("data.region={lat: [-5, .nan], lon: [0, 10]}"), ("'data.region.lat.1'", "Input should be a finite number")),
    Case("config-infinite-halo", _pretrain("data.region={lat: [-5, 5], lon: [0, 10], halo: .inf}"), ("'data.region.halo'", "Input should be a finite number")),
    Case("config-region-beyond-the-pole", _pretrain("data.region={lat: [60, 95], lon: [0, 10]}"), ("'data.region'", "latitude 60.0:95.0 goes beyond a pole; latitudes lie within [-90, 90]")),
    Case("config-region-wider-than-globe", _pretrain("data.region={lat: [-5, 5], lon: [0, 400]}"), ("'data.region'", "longitude 0.0:400.0 spans more than 360°")),
    Case("config-unknown-accelerator", _pretrain("trainer.accelerator=gpuu"), "unknown accelerator (did you mean 'gpu'?); choose one of auto, gpu"),
    Case("config-unknown-strategy", _pretrain("trainer.strategy=ddpp"), "unknown strategy (did you mean 'ddp'?)"),
    Case("config-unknown-precision", _pretrain("trainer.precision=31"), "unknown precision (did you mean '32'?)"),
    Case("config-zero-devices", _pretrain("trainer.devices=0"), ("'trainer.devices'", "devices must be a count >= 1")),
    Case("config-zero-max-steps", _pretrain("trainer.max_steps=0"), "max_steps must be -1 (no limit) or at least 1"),
    Case("config-limit-batches-above-one", _pretrain("trainer.limit_train_batches=1.5"), "fraction in (0, 1] or a whole count"),
    Case("config-negative-seed", _pretrain("seed=-1"), ("'seed'", "Input should be greater than or equal to 0")),
    Case("set-without-value", lambda w: ["pretrain", "--config", w.cfg(), "--set", "trainer.max_epochs", "--out", w.p("run")], "must look like key=value"),
    # pretrain: data that does not fit the config
    Case("pretrain-missing-variable", _pretrain("data.variables=[tas, zos]"), "variable 'zos' missing"),
    Case("pretrain-region-outside-grid", _pretrain("data.region={lat: [80, 89], lon: [0, 10]}"), "outside the grid"),
    Case("pretrain-split-leaves-block-empty", _pretrain("task.history=13"), "the val block 2005-2005 leaves no samples"),
    Case("pretrain-split-outside-years", _pretrain("data.split.test=[2030, 2031]"), "outside the data's years"),
    Case("pretrain-split-no-train-block", _pretrain("data.split.train=[]"), ("data.split", "train needs at least one block")),  # found by the fuzzer
    Case("pretrain-all-nan-variable", _pretrain_on(_all_nan), "'sst' is entirely NaN"),
    Case("pretrain-infinite-values", _pretrain_on(_with_inf), "infinite values in 'tas'"),
    Case("pretrain-corrupt-zarr-v2-chunk", _pretrain_on(lambda w: _corrupt_zarr(w, 2)), ("cannot read variable 'tas' of ", "v2.zarr at 2003-01-01T00:00:00 to 2003-12-01T00:00:00", "corrupt")),
    Case("pretrain-corrupt-zarr-v3-chunk", _pretrain_on(lambda w: _corrupt_zarr(w, 3)), ("cannot read variable 'tas' of ", "v3.zarr at 2003-01-01T00:00:00 to 2003-12-01T00:00:00", "corrupt")),
    Case("pretrain-corrupt-netcdf-chunk", _pretrain_on(_corrupt_netcdf, "data.variables=[tas]"), ("cannot read variable 'tas' of ", "corrupt.nc", "(NetCDF: HDF error)")),
    Case("pretrain-level-not-in-file", _pretrain_on(_levels, "data.variables=[tas, z]", "data.levels={z: [700]}"), "level 700 of 'z' is not in the file"),
    Case("pretrain-overlapping-files", _pretrain_on(_overlapping), "overlap"),
    Case("pretrain-calendar-mismatch-between-files", _pretrain_on(_mixed_calendars), "mix calendars"),
    Case("pretrain-index-target-on-another-grid", lambda w: _pretrain(*_index_other_grid(w))(w), "on another grid"),
    Case("pretrain-index-target-calendar-mismatch", lambda w: _pretrain(*_index_other_calendar(w))(w), "calendar mismatch"),
    Case("pretrain-out-is-a-file", lambda w: ["pretrain", "--config", w.cfg(), "--out", w.file("run")], "is a file"),
    Case("pretrain-out-not-writable", lambda w: ["pretrain", "--config", w.cfg(), "--out", w.file("f") + "/run"], "cannot create"),
    Case("pretrain-resume-without-checkpoint", lambda w: ["pretrain", "--config", w.cfg(), "--resume", _resume_dir(w)], "cannot resume"),
    # finetune: a task the pretrained artifact cannot serve
    Case("finetune-target-not-in-data", _finetune("data.targets=[zos]"), "variable 'zos' missing"),
    Case("finetune-unit-incompatible", _finetune(data=lambda w: _in_celsius(w, "m.nc", units="m")), "'tas' is in 'm', which cannot be converted to the 'K' of the pre-trained model"),
    Case("finetune-history-mismatch", _finetune("task.history=2"), "set task.history=1"),
    # °C labelled K: a mean shift, for a model normalised globally (one refitted in anomalies
    # takes the new climatology, and its anomalies are the same)
    Case("finetune-keep-shifted-statistics", lambda w: ["finetune", "--config", w.cfg("finetune.normalization.default=keep", "data.normalization=global", data=_mislabelled(w, "shifted.nc")), "--from", _global_parent(w), "--out", w.p("ft")], ("stored stds apart", "set finetune.normalization.variables.tas=refit (or auto)")),
    Case("finetune-keep-anomalies-of-another-spread", _finetune("finetune.normalization.default=keep", data=lambda w: _anomalies_wider(w, "wider.nc")), ("'tas' here is not distributed like", "x wider", "set finetune.normalization.variables.tas=refit (or auto)")),
    Case("finetune-normalization-not-the-parents", _finetune("data.normalization=global"), ("data.normalization=global, but the pre-trained model learnt anomalies", "set data.normalization to auto or anomaly")),
    Case("finetune-resume-without-checkpoint", lambda w: ["finetune", "--config", w.cfg(), "--from", str(w.model), "--resume", _resume_dir(w)], "cannot resume"),
    Case("finetune-from-missing", lambda w: ["finetune", "--config", w.cfg(), "--from", w.p("nope"), "--out", w.p("ft")], "does not exist"),
    Case("finetune-from-not-a-model", lambda w: ["finetune", "--config", w.cfg(), "--from", w.dir("empty"), "--out", w.p("ft")], "is not a ClimaTune model"),
    # evaluate
    Case("evaluate-no-test-block", lambda w: ["evaluate", str(w.model), "--config", w.cfg("data.split.test=null"), "--out", w.p("ev")], "no test block"),
    Case("evaluate-unknown-baseline", lambda w: ["evaluate", str(w.model), "--baselines", "magic", "--config", w.cfg(), "--out", w.p("ev")], "'magic'"),
    Case("evaluate-out-is-a-file", lambda w: ["evaluate", str(w.model), "--config", w.cfg(), "--out", w.file("ev")], "is a file"),
    # predict: input the model cannot read, outputs that cannot be written
    Case("predict-input-lacks-model-variable", lambda w: ["predict", str(w.model), "--input", w.nc("nosst.nc", dataset()[["tas", "pr"]]), "--output", w.p("p.nc")], "'sst' missing"),
    Case("predict-unit-incompatible", lambda w: ["predict", str(w.model), "--input", _in_celsius(w, "m.nc", units="m"), "--output", w.p("p.nc")], "'tas' is in 'm', which cannot be converted to the 'K' of the model"),
    Case("predict-too-few-steps", lambda w: ["predict", str(w.model), "--input", w.nc("one.nc", dataset(ntime=1)), "--output", w.p("p.nc")], "needs at least"),
    Case("predict-output-is-a-directory", lambda w: ["predict", str(w.model), "--input", str(w.archive), "--output", w.dir("p.nc")], "is a directory"),
    Case("predict-output-not-writable", lambda w: ["predict", str(w.model), "--input", str(w.archive), "--output", w.file("f") + "/p.nc"], "is a file, not a directory"),
    Case("predict-model-with-nan-weights", _predict_with(lambda w: _doctored(w, weights=_nan_weight)), "holds NaN or infinite values; refusing to load it"),
    Case("predict-model-with-integer-weights", _predict_with(lambda w: _doctored(w, weights=_int_weight)), ("is torch.int32, but the architecture needs torch.float32", "refusing to load it")),
    Case("predict-model-with-nan-climatology", _predict_with(lambda w: _doctored(w, climatology=_nan_climatology)), ("normalization.safetensors: tensor 'tas' holds NaN or infinite values", "refusing to load it")),
    Case("predict-model-with-integer-climatology", _predict_with(lambda w: _doctored(w, climatology=_int_climatology)), "normalization.safetensors: tensor 'tas' is torch.int32, not torch.float32"),
    Case("predict-model-static-on-another-grid", _predict_with(lambda w: _doctored(w, weights=_static_shape)), "the static inputs are [5, 7, 16], but the artifact's static names and grid say [5, 8, 16]"),
    Case("predict-model-negative-std", _predict_with(lambda w: _doctored(w, meta=_std(-1.0))), ("statistics of 'tas'", "std -1.0", "finite and positive")),
    Case("predict-model-zero-std", _predict_with(lambda w: _doctored(w, meta=_std(0.0))), ("statistics of 'tas'", "std 0.0")),
    Case("predict-model-nan-std", _predict_with(lambda w: _doctored(w, meta=_std(float("nan")))), ("statistics of 'tas'", "std nan")),
    Case("predict-model-huge-std", _predict_with(lambda w: _doctored(w, meta=_std(1e30))), ("statistics of 'tas'", "std 1e+30", "at most 1e+15")),  # found by the fuzzer
    Case("predict-model-huge-mean", _predict_with(lambda w: _doctored(w, meta=lambda d: d["normalization"]["mean"].update(tas=1e30))), ("statistics of 'tas'", "mean 1e+30")),  # found by the fuzzer
    Case("predict-model-variable-not-a-name", _predict_with(lambda w: _doctored(w, meta=lambda d: d["architecture"].update(variables=[1]))), "'architecture.variables' must be a list of variable names"),  # found by the fuzzer
    Case("predict-model-missing", lambda w: ["predict", w.p("nope"), "--input", str(w.archive), "--output", w.p("p.nc")], "does not exist"),
    # curve
    Case("curve-fraction-zero", lambda w: ["curve", "--config", w.cfg(), "--from", str(w.model), "--fractions", "0,0.5", "--out", w.p("c")], "(0, 1]"),
    Case("curve-fraction-above-one", lambda w: ["curve", "--config", w.cfg(), "--from", str(w.model), "--fractions", "0.5,1.5", "--out", w.p("c")], "(0, 1]"),
    Case("curve-fraction-not-a-number", lambda w: ["curve", "--config", w.cfg(), "--from", str(w.model), "--fractions", "half", "--out", w.p("c")], "comma-separated numbers"),
    Case("curve-missing-variable", lambda w: ["curve", "--config", w.cfg("data.variables=[tas, zos]"), "--from", str(w.model), "--fractions", "0.5", "--out", w.p("c")], "variable 'zos' missing"),
    # report
    Case("report-missing-dir", lambda w: ["report", w.p("nope")], "does not exist"),
    Case("report-nothing-to-report", lambda w: ["report", w.dir("empty")], "nothing to report"),
    Case("report-on-a-file", lambda w: ["report", w.file("f")], "is a file"),
    # explain
    Case("explain-unknown-target", lambda w: ["explain", str(w.model), "--config", w.cfg(), "--target", "zos", "--out", w.p("ex")], "'zos'"),
    Case("explain-zero-samples", lambda w: ["explain", str(w.model), "--config", w.cfg(), "--samples", "0", "--out", w.p("ex")], "--samples must be at least 1"),
    Case("explain-out-is-a-file", lambda w: ["explain", str(w.model), "--config", w.cfg(), "--method", "saliency", "--samples", "1", "--out", w.file("ex")], "is a file"),
    Case("explain-unknown-method", lambda w: ["explain", str(w.model), "--method", "magic", "--out", w.p("ex")], "invalid choice: 'magic'"),
    # tune
    Case("tune-space-unknown-key", _tune("optim.lrr: {type: float, low: 1.0e-4, high: 1.0e-2}\n"), "unknown config key 'optim.lrr'"),
    Case("tune-space-bad-range", _tune("optim.lr: {type: float, low: 0.1, high: 0.01}\n"), "must be below high"),
    Case("tune-space-finetune-key-without-from", _tune("finetune.freeze_stages: {type: int, low: 0, high: 2}\n"), "only matters when fine-tuning"),
    Case("tune-space-yaml-syntax-error", _tune("optim.lr: {type: float\nmodel.width: [1, 2\n"), "not valid YAML at line 2"),
    Case("tune-space-missing", lambda w: ["tune", "--config", w.cfg(), "--space", w.p("nope.yaml"), "--out", w.p("tune")], "does not exist"),
    Case("tune-too-many-folds", _tune("optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2}\n", "--folds", "50"), "--folds 50"),
    Case("tune-out-is-a-file", lambda w: _tune("optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2}\n")(w)[:-1] + [w.file("tune")], "is a file"),
    # the command line itself
    Case("unknown-command", lambda w: ["fly"], "invalid choice: 'fly'"),
    # --- the user's data is never overwritten or deleted (issue 14) ---
    # an output that is, contains or lies inside an input, under any spelling of its path
    Case("finetune-out-is-the-from-run", lambda w: _finetune()(w)[:-1] + [str(w.model)], "is the input"),
    Case("finetune-out-inside-the-from-run", lambda w: _finetune()(w)[:-1] + [str(w.model / "ft")], "lies inside the input"),
    Case("finetune-out-contains-the-from-run", lambda w: ["finetune", "--config", w.cfg(), "--from", _run_copy(w, "runs/pre"), "--out", w.p("runs")], "contains the input"),
    Case("finetune-out-is-the-from-run-respelled", lambda w: _finetune()(w)[:-1] + [_respelled(w.model)], "is the input"),
    Case("finetune-out-is-a-symlink-to-the-from-run", lambda w: _finetune()(w)[:-1] + [_link(w, "alias", w.model)], "is the input"),
    Case("finetune-out-inside-the-run-of-a-from-model-dir", lambda w: ["finetune", "--config", w.cfg(), "--from", str(w.model / "model"), "--out", str(w.model / "ft")], "pretrained; writing there could overwrite"),
    Case("pretrain-out-contains-the-data", lambda w: ["pretrain", "--config", w.cfg(data=_data_in(w, "d")), "--out", w.p("d")], "contains the input"),
    Case("pretrain-out-inside-a-zarr-store", lambda w: ["pretrain", "--config", w.cfg(data=_zarr_data(w)), "--out", w.p("data.zarr/run")], "lies inside the input"),
    Case("pretrain-out-contains-the-index-file", lambda w: ["pretrain", "--config", w.cfg(*_index_in(w, "idx")), "--out", w.p("idx")], "contains the input"),
    Case("pretrain-out-contains-the-static-file", lambda w: ["pretrain", "--config", w.cfg(f"data.static={{path: {_data_in(w, 'st')}, variables: [pr]}}"), "--out", w.p("st")], "contains the input"),
    Case("evaluate-out-is-the-model-run", lambda w: ["evaluate", str(w.model), "--config", w.cfg(), "--out", str(w.model)], "is the input"),
    Case("evaluate-out-contains-the-config", lambda w: ["evaluate", str(w.model), "--config", w.cfg(), "--out", w.p("")], "contains the input"),
    Case("explain-out-is-the-model-run", lambda w: ["explain", str(w.model), "--config", w.cfg(), "--out", str(w.model)], "is the input"),
    Case("curve-out-inside-the-from-run", lambda w: ["curve", "--config", w.cfg(), "--from", str(w.model), "--fractions", "1", "--out", str(w.model / "curve")], "lies inside the input"),
    Case("tune-out-contains-the-space-file", lambda w: _tune("optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2}\n")(w)[:-1] + [w.p("")], "contains the input"),
    Case("predict-output-is-the-input", lambda w: ["predict", str(w.model), "--input", w.nc("in.nc"), "--output", w.p("in.nc")], "is the input"),
    Case("predict-output-is-the-input-respelled", lambda w: ["predict", str(w.model), "--input", w.nc("in.nc"), "--output", w.p("./sub/../in.nc")], "is the input"),
    Case("predict-output-inside-the-model-run", lambda w: ["predict", str(w.model), "--input", str(w.archive), "--output", str(w.model / "p.nc")], "lies inside the input"),
    # existing outputs: a folder or file the user has, another command's run, a run being written
    Case("predict-output-exists", lambda w: ["predict", str(w.model), "--input", str(w.archive), "--output", w.nc("mine.nc")], "already exists"),
    Case("synth-out-is-an-existing-store", lambda w: ["data", "synth", "--out", _zarr_data(w), "--years", "1", "--grid", "8x16"], "already exists"),
    Case("synth-out-is-an-existing-file", lambda w: ["data", "synth", "--out", w.file("notes.txt"), "--years", "1", "--grid", "8x16"], "already exists"),
    Case("pretrain-out-holds-user-files", lambda w: ["pretrain", "--config", w.cfg(), "--out", str(Path(w.file("mine/notes.txt")).parent)], "already exists and is not empty"),
    Case("pretrain-overwrite-of-user-files", lambda w: ["pretrain", "--config", w.cfg(), "--overwrite", "--out", str(Path(w.file("mine/notes.txt")).parent)], "other than ClimaTune"),
    Case("pretrain-out-is-an-earlier-pretrain-run", lambda w: ["pretrain", "--config", w.cfg(), "--out", _run_copy(w)], "pass --overwrite"),
    Case("evaluate-overwrite-of-a-pretrain-run", lambda w: ["evaluate", str(w.model), "--config", w.cfg(), "--overwrite", "--out", _run_copy(w)], "written by `climatune pretrain`"),
    Case("finetune-resume-of-a-pretrain-run", lambda w: ["finetune", "--config", w.cfg(), "--from", str(w.model), "--resume", _run_copy(w)], "cannot resume"),
    Case("tune-out-is-a-pretrain-run", lambda w: _tune("optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2}\n")(w)[:-1] + [_run_copy(w)], "written by `climatune pretrain`"),
    Case("demo-overwrite-of-user-files", lambda w: ["demo", "--fast", "--overwrite", "--out", str(Path(w.file("mine/notes.txt")).parent)], "other than ClimaTune"),
    Case("pretrain-out-being-written-by-another-process", lambda w: ["pretrain", "--config", w.cfg(), "--overwrite", "--out", _locked_run(w)], "being written by another climatune process"),
    Case("report-over-a-user-report-html", _user_report, "not a ClimaTune report"),
    # --- small inputs stay small: bombs, huge and deeply nested files are refused quickly ---
    Case("config-yaml-alias-bomb", lambda w: ["pretrain", "--config", w.cfg(text=f"data:\n  levels: {_bomb()}\n"), "--out", w.p("run")], "YAML aliases expanded"),
    Case("config-deeply-nested", lambda w: ["pretrain", "--config", w.cfg(text=f"seed: {_deep()}\n"), "--out", w.p("run")], "nested too deeply"),
    Case("config-huge-file", lambda w: ["pretrain", "--config", w.cfg(text=Path(w.cfg()).read_text() + "#" * (2 << 20) + "\n"), "--out", w.p("run")], "over the limit"),
    Case("set-yaml-alias-bomb", lambda w: ["pretrain", "--config", w.cfg(), "--set", f"data.levels={_bomb()}", "--out", w.p("run")], "YAML aliases expanded"),
    Case("set-huge-value", lambda w: ["pretrain", "--config", w.cfg(), "--set", "seed=" + "9" * 50_000, "--out", w.p("run")], "over the limit"),
    Case("set-long-variable-name-error-is-short", lambda w: ["pretrain", "--config", w.cfg(), "--set", f"data.variables=[{'x' * 9000}]", "--out", w.p("run")], "missing"),
    Case("tune-space-alias-bomb", _tune(f"optim.lr: {{type: categorical, choices: {_bomb()}}}\n"), "YAML aliases expanded"),
    Case("tune-space-deeply-nested", _tune(f"optim.lr: {_deep()}\n"), "nested too deeply"),
    Case("predict-artifact-json-deeply-nested", lambda w: ["predict", _deep_artifact(w), "--input", str(w.archive), "--output", w.p("p.nc")], "nested too deeply"),
    # --- a report reads only the run's own files, never through a symbolic link ---
    Case("report-symlinked-json-to-etc-passwd", lambda w: ["report", _report_dir(w, **{"metrics.json": "/etc/passwd"})], "nothing to report"),
    Case("report-symlinked-json-to-another-folder", lambda w: ["report", _report_dir(w, **{"metrics.json": _outside(w) / "secret.json"})], "nothing to report"),
    Case("report-symlinked-png-to-another-folder", lambda w: ["report", _report_dir(w, **{"map_tas.png": _outside(w) / "secret.png"})], "nothing to report"),
    Case("report-symlinked-model-dir-of-another-run", lambda w: ["report", _report_dir(w, model=w.model / "model")], "nothing to report"),
]
# fmt: on


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line_and_writes_nothing(
    case: Case, shared, tmp_path, monkeypatch, capsys
):
    ws = Workspace(tmp_path / "case", shared["archive"], shared["model"], shared["config"])
    ws.tmp.mkdir()
    monkeypatch.chdir(ws.tmp)  # anything written relative to the working directory is caught too
    argv = case.argv(ws)
    before = (tree(ws.tmp), tree(shared["root"]))
    capsys.readouterr()

    rc = main(argv)

    out, err = capsys.readouterr()
    assert rc == 2, f"exit code {rc}; stderr: {err}"
    assert "Traceback" not in err
    assert err.startswith("climatune: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert len(err) <= 1100, f"an error line of {len(err)} characters"
    for part in case.expect if isinstance(case.expect, tuple) else (case.expect,):
        assert part in err, f"expected {part!r} in: {err}"
    assert out == ""
    assert leftovers(ws.tmp) == [] and leftovers(shared["root"]) == []
    assert tree(ws.tmp) == before[0], "the command changed its output directory"
    assert tree(shared["root"]) == before[1], "the command changed the shared inputs"


# Compatible units were refused once (predict-unit-mismatch, finetune-unit-mismatch);
# they are converted now, and the conversion is reported.
CONVERTED = {
    "predict-unit-converted": (
        lambda w: [
            "predict",
            str(w.model),
            "--input",
            _in_celsius(w, "c.nc"),
            "--output",
            w.p("p.nc"),
        ],
        "note: units converted to the model's: tas: degC -> K",
    ),
    "finetune-unit-converted": (
        _finetune(data=lambda w: _in_celsius(w, "c.nc")),
        "units converted to the pre-trained model's: tas: degC -> K",
    ),
}


@pytest.mark.parametrize("name", sorted(CONVERTED))
def test_compatible_units_are_converted_and_reported(name, shared, tmp_path, capsys, caplog):
    ws = Workspace(tmp_path / "case", shared["archive"], shared["model"], shared["config"])
    ws.tmp.mkdir()
    build, note = CONVERTED[name]
    with caplog.at_level("WARNING", logger="climatune"):  # notes reach stderr in a terminal
        rc = main(build(ws))
    err = capsys.readouterr().err
    assert rc == 0, err
    assert note in err + caplog.text
    if name.startswith("predict"):
        with xr.open_dataset(ws.p("p.nc")) as pred:
            assert pred.tas.attrs["units"] == "degC" and pred.sst.attrs["units"] == "K"
    else:
        meta = json.loads((ws.tmp / "ft" / "model" / "climatune.json").read_text())
        assert {r["name"]: r["units"] for r in meta["inputs"]} == {"tas": "K", "sst": "K"}


COMMANDS = (
    "data inspect, data synth, pretrain, finetune, evaluate, predict, curve, report, explain, "
    "tune, demo"
)


def test_the_catalogue_is_large_and_covers_every_command():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 25
    prefixes = {i.split("-")[0] for i in ids}
    assert {c.split()[-1] for c in COMMANDS.split(", ")} <= prefixes
