"""Fuzzing the command line: hostile configs, ``--set`` values, data files and artifacts.

Every example runs ``climatune.cli.main`` in-process on a fresh folder and checks the
contract of DESIGN.md: exit 0 with finite outputs, or exit 2 with exactly one
``climatune: error:`` line and nothing left behind; never a traceback, never another code.

``make test`` runs a small seeded slice (``derandomize``, about a minute). ``make fuzz``
runs it long: ``CLIMATUNE_FUZZ_EXAMPLES`` examples per target, random, with the seed
printed so that a failure can be replayed with ``--hypothesis-seed``.

Keys that set the training budget or the network's size (``BUDGET``) are left out of the
config targets: a valid huge value there is a long run, not a broken contract. So are the
keys that start more processes (``PROCESSES``): Lightning launches DDP workers by running
``sys.argv`` again, which in-process is pytest, not ``climatune``; the first 30-minute run
hung there, waiting for workers that never joined.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from climatune.cli import main
from climatune.tuning.space import set_keys
from tests.reliability.conftest import base_config, leftovers, tree
from tests.reliability.test_bad_inputs import dataset

EXAMPLES = int(os.environ.get("CLIMATUNE_FUZZ_EXAMPLES", "0"))
TRIED: Counter[str] = Counter()
BUDGET = {
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.limit_train_batches",
    "trainer.limit_val_batches",
    "trainer.patience",
    "model.width",
    "model.depth",
    "model.heads",
    "model.patch",
}
PROCESSES = {"trainer.strategy", "trainer.devices", "trainer.num_nodes", "data.num_workers"}
MADE_UP = ["", ".", "data..path", "model.nope", "trainer.lr", "a" * 300, "data.variables.0"]
ONE_STEP = ["--set", "trainer.max_steps=1", "--set", "trainer.max_epochs=1"]


def fuzz(fast: int, share: float = 1.0) -> settings:
    """``fast`` seeded examples in ``make test``; else ``share`` of ``CLIMATUNE_FUZZ_EXAMPLES``
    random ones (a slow target gets a smaller share)."""
    return settings(
        max_examples=max(1, int(EXAMPLES * share)) if EXAMPLES else fast,
        derandomize=not EXAMPLES,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )


@pytest.fixture(scope="module", autouse=True)
def _count(request):
    """Say how many cases were tried, past pytest's capture."""
    yield
    total = sum(TRIED.values())
    parts = ", ".join(f"{k} {v}" for k, v in sorted(TRIED.items()))
    with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        print(f"\nfuzz: {total} cases tried ({parts})")


# ------------------------------------------------------------------------ the contract


def check_contract(target: str, argv: list[str], work: Path, capsys) -> int:
    """Run the CLI; exit 0, or exit 2 with one error line and ``work`` as it was."""
    before = tree(work)
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's --help and --version
        rc = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    TRIED[f"{target} exit {rc}"] += 1
    assert "Traceback" not in out + err, err
    assert rc in (0, 2), f"exit code {rc}: {argv}\n{err}"
    assert leftovers(work) == [], err
    if rc == 2:
        lines = [line for line in err.splitlines() if line.startswith("climatune: error:")]
        assert len(lines) == 1 and err.rstrip("\n").endswith(lines[0]), err
        assert len(lines[0]) <= 1100
        assert tree(work) == before, f"left behind: {argv}\n{err}"
    return rc


def finite_predictions(path: Path) -> None:
    """Every predicted number is finite (NaN only where there is no data: a mask)."""
    with xr.open_dataset(path) as ds:
        assert ds.data_vars
        for name, var in ds.data_vars.items():
            values = np.asarray(var.values, dtype=float)
            assert not np.isinf(values).any(), f"{name}: infinite predictions"
            assert np.isfinite(values).any(), f"{name}: no finite prediction"
            assert np.nanmax(np.abs(values)) < 1e15, f"{name}: impossible predictions"


# ------------------------------------------------------------------------- strategies

HOSTILE_NUMBERS = [math.nan, math.inf, -math.inf, 1e30, -1e30, 9.96921e36, 0, -1, 2**63, 1e-320]
HOSTILE_TEXT = ["", " ", "~", "null", ".nan", "[", "{", "*a", "&a [*a]", "\x00", "é" * 300, "a=b"]

scalars = st.one_of(
    st.integers(-2, 12),  # plausible values reach the code behind validation
    st.floats(-2, 2),
    st.sampled_from(["tas", "sst", "pr", "forecast", "unet", "vit", "cpu", "auto"]),
    st.sampled_from(HOSTILE_NUMBERS),
    st.sampled_from(HOSTILE_TEXT),
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _leaves(tree_: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree_.items():
        path = f"{prefix}{key}"
        keys += _leaves(value, f"{path}.") if isinstance(value, dict) and value else [path]
    return keys


@st.composite
def configs(draw, base: dict) -> str:
    """The base config's YAML with one to three keys (known or made up) set to hostile values."""
    raw = json.loads(json.dumps(base))
    known = [k for k in _leaves(raw) if k not in BUDGET | PROCESSES]
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from([*known, *MADE_UP]))
        raw = set_keys(raw, {key: draw(values)})
    return yaml.safe_dump(raw, allow_unicode=True)


set_values = st.one_of(
    st.sampled_from(HOSTILE_TEXT + ["nan", "inf", "-inf", "1e309", "-1", "0", "[]", "{}"]),
    st.text(max_size=30),
    values.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()),
)


@st.composite
def data_files(draw) -> tuple[xr.Dataset, str, dict]:
    """The tiny archive with hostile coordinates, attributes or values; its format."""
    ds = dataset()
    encoding: dict = {}
    for change in draw(st.lists(st.sampled_from(sorted(DATA_CHANGES)), min_size=1, max_size=3)):
        try:
            ds = DATA_CHANGES[change](ds, draw, encoding)
        except (ValueError, KeyError):  # e.g. a calendar change of duplicate times
            continue
    return ds, draw(st.sampled_from(["nc", "zarr"])), encoding


def _coord(ds: xr.Dataset, name: str, values) -> xr.Dataset:
    return ds.assign_coords({name: (name, np.asarray(values), ds[name].attrs)})


def _poke(ds: xr.Dataset, draw, value) -> xr.Dataset:
    """``value`` written into some cells of one variable."""
    name = draw(st.sampled_from(["tas", "sst", "pr"]))
    data = ds[name].values.copy()
    flat = data.reshape(-1)
    cells = draw(st.lists(st.integers(0, flat.size - 1), min_size=1, max_size=50))
    flat[cells] = value
    return ds.assign({name: ds[name].copy(data=data)})


def _fill_value(ds: xr.Dataset, draw, encoding: dict) -> xr.Dataset:
    """A hostile ``_FillValue`` (one that real data hits, or NaN) for one variable."""
    name = draw(st.sampled_from(["tas", "sst"]))
    encoding[name] = {"_FillValue": draw(st.sampled_from([0.0, 1e30, -1.0, 9.96921e36, math.nan]))}
    return ds


DATA_CHANGES = {
    "lat-descending": lambda ds, draw, enc: ds.isel(lat=slice(None, None, -1)),
    "lat-duplicate": lambda ds, draw, enc: _coord(ds, "lat", np.r_[ds.lat[:1], ds.lat[:-1]]),
    "lat-nan": lambda ds, draw, enc: _coord(ds, "lat", np.r_[ds.lat[:-1], np.nan]),
    "lat-huge": lambda ds, draw, enc: _coord(ds, "lat", ds.lat * 1e30),
    "lat-one": lambda ds, draw, enc: ds.isel(lat=[draw(st.integers(0, ds.lat.size - 1))]),
    "lon-shuffled": lambda ds, draw, enc: ds.isel(
        lon=draw(st.permutations(list(range(ds.lon.size))))
    ),
    "lon-signed": lambda ds, draw, enc: _coord(ds, "lon", (ds.lon + 180) % 360 - 180),
    "lon-one": lambda ds, draw, enc: ds.isel(lon=[0]),
    "lon-inf": lambda ds, draw, enc: _coord(ds, "lon", np.r_[ds.lon[:-1], np.inf]),
    "time-reversed": lambda ds, draw, enc: ds.isel(time=slice(None, None, -1)),
    "time-duplicate": lambda ds, draw, enc: ds.isel(time=np.r_[0, np.arange(ds.time.size - 1)]),
    "time-short": lambda ds, draw, enc: ds.isel(time=slice(0, draw(st.integers(1, 30)))),
    "time-calendar": lambda ds, draw, enc: ds.convert_calendar(
        draw(st.sampled_from(["noleap", "360_day", "julian", "all_leap"])), align_on="year"
    ),
    "units-garbage": lambda ds, draw, enc: ds.assign(
        tas=ds.tas.assign_attrs(units=draw(st.sampled_from(HOSTILE_TEXT + ["furlongs", "K K"])))
    ),
    "units-missing": lambda ds, draw, enc: ds.assign(
        tas=ds.tas.assign_attrs({k: v for k, v in ds.tas.attrs.items() if k != "units"})
    ),
    "fill-value": lambda ds, draw, enc: _fill_value(ds, draw, enc),
    "values-nan": lambda ds, draw, enc: _poke(ds, draw, np.nan),
    "values-inf": lambda ds, draw, enc: _poke(ds, draw, np.inf),
    "values-huge": lambda ds, draw, enc: _poke(ds, draw, 1e30),
    "values-sentinel": lambda ds, draw, enc: _poke(ds, draw, 9.96921e36),
}


def _write(ds: xr.Dataset, fmt: str, encoding: dict, path: Path) -> Path:
    """Write the hostile dataset as NetCDF or Zarr."""
    if fmt == "zarr":
        ds.to_zarr(path, zarr_format=2, encoding=encoding)
    else:
        ds.to_netcdf(path, encoding=encoding)
    return path


ARTIFACT_CHANGES = ["truncate-json", "delete-file", "json-value", "weights-shape",
                    "weights-dtype", "weights-nan", "weights-missing-tensor"]  # fmt: skip


def _break_artifact(model: Path, draw) -> None:
    """One hostile change to the artifact folder ``model`` (climatune.json + weights)."""
    meta, weights = model / "climatune.json", model / "weights.safetensors"
    change = draw(st.sampled_from(ARTIFACT_CHANGES))
    if change == "truncate-json":
        text = meta.read_bytes()
        meta.write_bytes(text[: draw(st.integers(0, len(text) - 1))])
    elif change == "delete-file":
        draw(st.sampled_from(sorted(model.iterdir()))).unlink()
    elif change == "json-value":
        raw = json.loads(meta.read_text())
        raw = set_keys(raw, {draw(st.sampled_from(_leaves(raw))): draw(values)})
        meta.write_text(json.dumps(raw))
    else:
        tensors = load_file(weights)
        name = draw(st.sampled_from(sorted(tensors)))
        if change == "weights-shape":
            tensors[name] = torch.zeros(*(n + 1 for n in tensors[name].shape))
        elif change == "weights-dtype":
            tensors[name] = tensors[name].to(draw(st.sampled_from([torch.int32, torch.float64])))
        elif change == "weights-nan":
            tensors[name] = torch.full_like(tensors[name], math.nan)
        else:
            del tensors[name]
        save_file(tensors, str(weights))


# ----------------------------------------------------------------------------- targets


@fuzz(fast=8)
@given(data=st.data())
def test_fuzz_configs(data, shared, capsys):
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = work / "cfg.yaml"
        config.write_text(data.draw(configs(base_config(shared["archive"]))))
        argv = ["pretrain", "--config", str(config), "--out", str(work / "run"), *ONE_STEP]
        if check_contract("config", argv, work, capsys) == 0:
            assert (work / "run" / "model" / "weights.safetensors").is_file()


@fuzz(fast=12)
@given(data=st.data())
def test_fuzz_set_values(data, shared, capsys):
    known = [k for k in _leaves(base_config(shared["archive"])) if k not in BUDGET | PROCESSES]
    key = data.draw(st.sampled_from([*known, *MADE_UP]) | st.text(max_size=12))
    value = data.draw(set_values)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        argv = ["pretrain", "--config", str(shared["config"]), "--out", str(work / "run")]
        argv += [*ONE_STEP, "--set", f"{key}={value}"]
        if check_contract("--set", argv, work, capsys) == 0:
            assert (work / "run" / "model" / "weights.safetensors").is_file()


@fuzz(fast=6, share=0.2)
@given(case=data_files())
def test_fuzz_data_files(case, shared, capsys):
    ds, fmt, encoding = case
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        try:
            path = _write(ds, fmt, encoding, work / f"in.{fmt}")
        except (ValueError, TypeError, OverflowError):
            return  # xarray itself refuses to write it: no user can bring this file
        check_contract("data", ["data", "inspect", str(path)], work, capsys)
        out = work / "pred.nc"
        argv = ["predict", str(shared["model"]), "--input", str(path), "--output", str(out)]
        argv += ["--device", "cpu"]
        if check_contract("data", argv, work, capsys) == 0:
            finite_predictions(out)
        argv = ["evaluate", str(shared["model"]), "--config", str(shared["config"])]
        argv += ["--set", f"data.path={path}", "--baselines", "none", "--device", "cpu"]
        if check_contract("data", [*argv, "--out", str(work / "eval")], work, capsys) == 0:
            metrics = json.loads((work / "eval" / "metrics.json").read_text())
            assert "Infinity" not in json.dumps(metrics)


@fuzz(fast=10)
@given(data=st.data())
def test_fuzz_artifacts(data, shared, capsys):
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = work / "run" / "model"
        shutil.copytree(shared["model"] / "model", model)
        _break_artifact(model, data.draw)
        out = work / "out" / "pred.nc"
        argv = ["predict", str(model), "--input", str(shared["archive"]), "--output", str(out)]
        if check_contract("artifact", [*argv, "--device", "cpu"], work, capsys) == 0:
            finite_predictions(out)
