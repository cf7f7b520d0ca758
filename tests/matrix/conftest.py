"""The task × command × setting matrix: scenarios, their archives and their shared runs.

A :class:`Scenario` is one task kind with one value of each setting that changes code
paths (lead, history, grid, NaN cells, where an index target comes from). Every command
that takes a model or a config runs on every scenario it is listed for, through the
command line in-process. Runs are built lazily and once per session by :class:`Matrix`
(pretrain once per scenario, then evaluate, predict, explain, report, finetune, curve and
tune that run), so a test asks for what it checks and shares the rest.

Coverage: each task kind meets every grid (global, regional, regional across 0°) and NaN
cells; forecast and index meet lead 0 and lead > 0, history 1 and > 1; the index task
also reads its target from another file. Lead and history do not apply to ``downscale``
and ``reconstruct``: one scenario sets a lead there and checks that it is ignored.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml

from climatune.cli import main
from climatune.testing import tiny_archive
from tests.reliability.conftest import base_config, write_config

#: Scored-region boxes used by the scenarios (lat, lon), degrees.
BOX = {"lat": [-35.0, 35.0], "lon": [60.0, 160.0]}
SEAM_BOX = {"lat": [-35.0, 60.0], "lon": [300.0, 50.0]}


@dataclass(frozen=True)
class Scenario:
    """One task kind with one value of each code-path setting.

    ``grid`` is ``global`` (the 8x16 archive), ``region`` (that archive with a
    ``data.region`` box and a halo), ``seam-region`` (a ``data.region`` box across 0°),
    ``regional-file`` (a file that covers a box only) or ``seam-file`` (a file that covers
    a box across 0°, its longitudes written -67.5..45). ``index`` is ``same`` (the series
    is a variable of the archive) or ``file`` (another NetCDF, ``task.index.path``).
    ``xfail`` maps a check name to the reason it is a known failure.
    """

    name: str
    kind: str
    grid: str = "global"
    lead: int = 0
    history: int = 1
    variables: tuple[str, ...] = ("tas", "sst")
    targets: tuple[str, ...] | None = None
    index: str | None = None
    fast: bool = False
    xfail: dict[str, str] = field(default_factory=dict)

    @property
    def seam(self) -> bool:
        return self.grid.startswith("seam")

    @property
    def index_name(self) -> str | None:
        return {"same": "nino34", "file": "soi"}.get(self.index or "")

    @property
    def lag(self) -> tuple[int, int]:
        """The (history, lead) the task really uses: 1, 0 for downscale and reconstruct."""
        return (self.history, self.lead) if self.kind in ("forecast", "index") else (1, 0)


SCENARIOS = [
    Scenario(
        "forecast-global-lead0-nan",
        "forecast",
        variables=("tas", "pr"),
        targets=("sst",),
        fast=True,
    ),
    Scenario(
        "forecast-region-lead2-hist3",
        "forecast",
        grid="region",
        lead=2,
        history=3,
        targets=("tas",),
        fast=True,
    ),
    Scenario(
        "forecast-seamfile-lead1-hist2-nan",
        "forecast",
        grid="seam-file",
        lead=1,
        history=2,
    ),
    Scenario(
        "index-global-file-lead0-hist2-nan",
        "index",
        history=2,
        index="file",
        fast=True,
    ),
    Scenario(
        "index-regionfile-lead1",
        "index",
        grid="regional-file",
        lead=1,
        index="same",
    ),
    Scenario(
        "index-seamregion-lead3-nan",
        "index",
        grid="seam-region",
        lead=3,
        index="same",
    ),
    Scenario("downscale-global-nan", "downscale", fast=True),
    Scenario("downscale-regionfile-lead2-ignored", "downscale", grid="regional-file", lead=2),
    Scenario(
        "downscale-seamfile-nan",
        "downscale",
        grid="seam-file",
    ),
    Scenario("reconstruct-seamregion-nan", "reconstruct", grid="seam-region", fast=True),
    Scenario("reconstruct-global-nan", "reconstruct"),
    Scenario("reconstruct-region", "reconstruct", grid="region"),
]
BY_NAME = {s.name: s for s in SCENARIOS}
#: The scenarios that curve and tune run on: every kind, and every setting value once.
CURVE_TUNE = (
    "forecast-region-lead2-hist3",
    "index-global-file-lead0-hist2-nan",
    "index-seamregion-lead3-nan",
    "downscale-seamfile-nan",
    "reconstruct-global-nan",
)


def cells(check: str, names: tuple[str, ...] | None = None, *, fast: bool = True) -> list:
    """``pytest.param`` per scenario for ``check``: slow unless the scenario is fast (and
    ``fast`` allows), strictly xfailed where the scenario lists one
    of the ``+``-joined check names."""
    out = []
    for s in SCENARIOS:
        if names is not None and s.name not in names:
            continue
        marks = [] if (s.fast and fast) else [pytest.mark.slow]
        reasons = [s.xfail[c] for c in check.split("+") if c in s.xfail]
        if reasons:
            marks.append(pytest.mark.xfail(strict=True, reason="; ".join(reasons)))
        out.append(pytest.param(s, id=s.name, marks=marks))
    return out


# --------------------------------------------------------------------------- archives


def _with_series(ds: xr.Dataset, seed: int) -> xr.Dataset:
    """Add an independent-noise ``sst`` and a ``nino34`` series that the fields explain.

    Neither is an exact function of the other inputs, so a baseline or a network that
    scores RMSE ~0 at lead 0 has seen the target.
    """
    rng = np.random.default_rng(seed + 100)
    ds = ds.load()
    noise = rng.normal(0.0, 0.5, ds.tas.shape).astype("f4")
    ds["sst"] = (ds.tas - 5 + noise).where(ds.lat < 40).assign_attrs(ds.sst.attrs)
    box = ds.tas.sel(lat=slice(-20, 20)).mean(("lat", "lon"))
    series = 0.02 * (box - box.mean()) + rng.normal(0.0, 0.5, box.shape)
    ds["nino34"] = series.astype("f4").assign_attrs(units="K", long_name="Nino 3.4 index")
    return ds


def _build_archives(root: Path) -> dict[str, Path]:
    """``global`` (8x16), ``regional-file``, ``seam-file`` and the separate ``index`` file."""
    root.mkdir(parents=True)
    paths = {}
    coarse = _with_series(xr.open_dataset(tiny_archive(root / "tiny8x16.nc"), use_cftime=True), 0)
    coarse.to_netcdf(paths.setdefault("global", root / "global.nc"))
    soi = (-coarse.nino34 * 2.0).assign_attrs(units="hPa", long_name="Southern Oscillation Index")
    soi.to_dataset(name="soi").to_netcdf(paths.setdefault("index", root / "soi.nc"))
    fine = xr.open_dataset(tiny_archive(root / "tiny16x32.nc", nlat=16, nlon=32), use_cftime=True)
    fine = _with_series(fine, 1)
    box = fine.sel(lat=slice(*BOX["lat"]), lon=slice(*BOX["lon"]))
    box.to_netcdf(paths.setdefault("regional-file", root / "box.nc"))
    west = fine.sel(lon=slice(290.0, 360.0)).assign_coords(lon=lambda d: d.lon - 360.0)
    seam = xr.concat([west, fine.sel(lon=slice(0.0, 45.0))], "lon", data_vars="minimal")
    seam = seam.sel(lat=slice(-35.0, 55.0))
    seam.to_netcdf(paths.setdefault("seam-file", root / "seam.nc"))
    return paths


# --------------------------------------------------------------------------- outcomes


@dataclass
class Outcome:
    """What one command did: its exit code (or the exception it raised) and its outputs."""

    rc: int
    out: Path
    error: str = ""

    def check(self) -> Outcome:
        """Fail the test with the command's traceback unless it exited 0."""
        assert self.rc == 0, f"exit code {self.rc}\n{self.error}"
        return self


def cli(out: Path, *args: str) -> Outcome:
    """Run ``climatune ARGS`` in-process; a crash (exit 1 in the shell) is kept, not raised."""
    try:
        rc = main(list(args))
    except BaseException as exc:  # noqa: BLE001 - a crash is a result the tests judge
        if isinstance(exc, KeyboardInterrupt):
            raise
        return Outcome(1, out, "".join(traceback.format_exception(exc)))
    return Outcome(rc, out)


class Matrix:
    """Lazily built, shared runs of every scenario (one per command and scenario)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.archives = _build_archives(root / "data")
        self._done: dict[tuple[str, str], Outcome] = {}

    def _once(self, what: str, s: Scenario, make: Callable[[Path], Outcome]) -> Outcome:
        key = (what, s.name)
        if key not in self._done:
            self._done[key] = make(self.root / s.name / what)
        return self._done[key]

    def archive(self, s: Scenario) -> Path:
        return self.archives["global" if s.grid in ("global", "region", "seam-region") else s.grid]

    def config_sets(self, s: Scenario) -> list[str]:
        sets = [
            f"task.kind={s.kind}",
            f"task.lead={s.lead}",
            f"task.history={s.history}",
            f"data.variables=[{', '.join(s.variables)}]",
            "task.factor=2",
            "trainer.patience=1",
        ]
        if s.targets:
            sets.append(f"data.targets=[{', '.join(s.targets)}]")
        if s.grid == "region":
            sets.append(f"data.region={{lat: {BOX['lat']}, lon: {BOX['lon']}, halo: 25}}")
        if s.grid == "seam-region":
            sets.append(f"data.region={{lat: {SEAM_BOX['lat']}, lon: {SEAM_BOX['lon']}}}")
        if s.index == "same":
            sets.append("task.index.variable=nino34")
        if s.index == "file":
            sets += ["task.index.variable=soi", f"task.index.path={self.archives['index']}"]
        return sets

    def config(self, s: Scenario, *sets: str, name: str = "config") -> Path:
        """The scenario's config YAML (the tiny training config with its settings)."""
        path = self.root / s.name / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_config(path, base_config(self.archive(s), *self.config_sets(s)), *sets)

    def pretrain(self, s: Scenario) -> Outcome:
        return self._once(
            "pretrain",
            s,
            lambda out: cli(out, "pretrain", "--config", str(self.config(s)), "--out", str(out)),
        )

    def finetune(self, s: Scenario, tag: str = "", sets: tuple[str, ...] = ()) -> Outcome:
        """Fine-tune the pretrained run with seed 1 and ``sets`` (``tag`` names the run)."""

        def make(out: Path) -> Outcome:
            src = self.pretrain(s).check().out
            cfg = self.config(s, "seed=1", *sets, name=f"finetune{tag}")
            return cli(out, "finetune", "--config", str(cfg), "--from", str(src), "--out", str(out))

        return self._once(f"finetune{tag}", s, make)

    def evaluate(self, s: Scenario, which: str = "pretrain") -> Outcome:
        def make(out: Path) -> Outcome:
            run = getattr(self, which)(s).check().out
            return cli(out, "evaluate", str(run), "--baselines", "all", "--out", str(out))

        return self._once(f"evaluate-{which}", s, make)

    def predict(self, s: Scenario) -> Outcome:
        def make(out: Path) -> Outcome:
            run = self.pretrain(s).check().out
            out.mkdir(parents=True)
            path = out / "pred.nc"
            return cli(
                path, "predict", str(run), "--input", str(self.archive(s)), "--output", str(path)
            )

        return self._once("predict", s, make)

    def explain(self, s: Scenario) -> Outcome:
        def make(out: Path) -> Outcome:
            run = self.pretrain(s).check().out
            return cli(out, "explain", str(run), "--samples", "2", "--out", str(out))

        return self._once("explain", s, make)

    def report(self, s: Scenario) -> Outcome:
        def make(out: Path) -> Outcome:
            self.evaluate(s).check()
            self.explain(s)
            return cli(self.root / s.name / "report.html", "report", str(self.root / s.name))

        return self._once("report", s, make)

    def curve(self, s: Scenario) -> Outcome:
        def make(out: Path) -> Outcome:
            src = self.pretrain(s).check().out
            cfg = self.config(s)
            return cli(
                out,
                "curve",
                "--config",
                str(cfg),
                "--from",
                str(src),
                "--fractions",
                "0.5,1",
                "--out",
                str(out),
            )

        return self._once("curve", s, make)

    def tune(self, s: Scenario) -> Outcome:
        def make(out: Path) -> Outcome:
            src = self.pretrain(s).check().out
            space = self.root / s.name / "space.yaml"
            space.write_text(
                yaml.safe_dump(
                    {"optim.lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True}}
                )
            )
            args = ["--config", str(self.config(s)), "--from", str(src), "--space", str(space)]
            return cli(out, "tune", *args, "--trials", "1", "--folds", "2", "--out", str(out))

        return self._once("tune", s, make)


@pytest.fixture(scope="session")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Matrix:
    """The session's shared runs; one torch thread (the machine is small and shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield Matrix(tmp_path_factory.mktemp("matrix"))
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- oracles


def expected_grid(s: Scenario, m: Matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The domain's lat and lon (input order, degrees in [0, 360)) and the scored mask.

    Written from the scenario's definition, independently of the package's region code.
    """
    src = xr.open_dataset(m.archive(s), use_cftime=True)
    lat, lon = src.lat.values, np.mod(src.lon.values, 360.0)
    if s.grid == "region":
        lat_d = lat[(lat >= BOX["lat"][0] - 25) & (lat <= BOX["lat"][1] + 25)]
        lon_d = lon[(lon >= BOX["lon"][0] - 25) & (lon <= BOX["lon"][1] + 25)]
        box = BOX
    elif s.grid == "seam-region":
        lat_d = lat[(lat >= SEAM_BOX["lat"][0]) & (lat <= SEAM_BOX["lat"][1])]
        west, east = SEAM_BOX["lon"]
        lon_d = np.concatenate([lon[lon >= west], lon[lon <= east]])  # 315, 337.5, 0, ..., 45
        box = SEAM_BOX
    else:
        return lat, lon, np.ones((lat.size, lon.size), dtype=bool)
    lat_ok = (lat_d >= box["lat"][0]) & (lat_d <= box["lat"][1])
    west, east = box["lon"]
    lon_ok = (lon_d >= west) & (lon_d <= east) if west < east else (lon_d >= west) | (lon_d <= east)
    return lat_d, lon_d, lat_ok[:, None] & lon_ok[None, :]


def truth(s: Scenario, m: Matrix, name: str) -> xr.DataArray:
    """The true target ``name`` as read from the files (index series or field)."""
    if s.index == "file":
        return xr.open_dataset(m.archives["index"], use_cftime=True)[name]
    return xr.open_dataset(m.archive(s), use_cftime=True)[name]


def weighted_scores(pred: np.ndarray, true: np.ndarray, lat: np.ndarray, mask: np.ndarray) -> dict:
    """RMSE, MAE and bias with cos(lat) weights over valid cells (DESIGN.md, Metrics)."""
    w = np.broadcast_to(np.cos(np.deg2rad(lat))[None, :, None] * mask[None], pred.shape)
    ok = np.isfinite(pred) & np.isfinite(true) & (w > 0)
    w, d = w[ok], (pred - true)[ok]
    return {
        "rmse": math.sqrt(np.sum(w * d**2) / np.sum(w)),
        "mae": float(np.sum(w * np.abs(d)) / np.sum(w)),
        "bias": float(np.sum(w * d) / np.sum(w)),
    }
