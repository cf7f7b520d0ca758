"""evaluate, predict and curve end to end on a tiny archive."""

from __future__ import annotations

import csv
import json

import netCDF4
import numpy as np
import pytest
import xarray as xr

from climatune.cli import main
from climatune.config import load_config
from climatune.data.view import build_view
from climatune.evaluation.baselines import make_baseline
from climatune.evaluation.bootstrap import INTERVAL_KEYS
from climatune.evaluation.evaluate import ROW_KEYS
from climatune.evaluation.metrics import score
from climatune.report.tables import interval_text
from climatune.testing import tiny_archive, tiny_config
from climatune.workflows.curve import curve_command
from climatune.workflows.pretraining import pretrain


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    archive = tiny_archive(root / "tiny.nc")
    run = pretrain(tiny_config(archive, "data.targets=[tas]"), out=root / "run")
    return archive, run


def test_evaluate_writes_rows_and_maps(trained, tmp_path, capsys):
    _, run = trained
    out = tmp_path / "eval"
    assert main(["evaluate", str(run), "--baselines", "all", "--out", str(out)]) == 0
    rows = json.loads((out / "metrics.json").read_text())
    pairs = [r for r in rows if r["metric"] == "rmse_diff"]
    rows = [r for r in rows if r["metric"] != "rmse_diff"]
    assert all(set(r) == set(ROW_KEYS) for r in rows)
    assert all(set(r) == {*ROW_KEYS, *INTERVAL_KEYS} for r in pairs)
    assert len(pairs) == 6 and {r["model"] for r in pairs} == {"pretrained"}
    _check_pairs(pairs, rows, capsys.readouterr().out)
    rmse = {r["model"]: r["value"] for r in rows if r["metric"] == "rmse" and r["split"] == "test"}
    assert set(rmse) == {
        "pretrained",
        "climatology",
        "persistence",
        "damped_persistence",
        "recent_mean",
        "linear_trend",
        "ridge",
    }
    assert all(v > 0 for v in rmse.values())
    with open(out / "metrics.csv") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == len(rows) + len(pairs)
    assert list(table[0])[: len(ROW_KEYS)] == list(ROW_KEYS)  # the old columns come first
    assert table[0]["reference"] == "" and table[-1]["reference"] == pairs[-1]["reference"]
    assert (out / "map_pretrained_tas.png").stat().st_size > 1000


def _check_pairs(pairs: list[dict], rows: list[dict], printed: str) -> None:
    """Each interval row is the RMSE difference, holds it, and is printed with its block."""
    rmse = {r["model"]: r["value"] for r in rows if r["metric"] == "rmse"}
    for r in pairs:
        assert r["value"] == pytest.approx(rmse["pretrained"] - rmse[r["reference"]])
        assert r["ci_low"] <= r["value"] <= r["ci_high"]
        assert r["level"] == 0.95 and r["seed"] == 0 and 2 <= r["block_length"] <= r["n_times"] // 2
        text = f"  vs {r['reference']}: "
        assert text in printed
        line = printed[printed.index(text) :].split("\n", 1)[0]
        assert line == f"  vs {r['reference']}: {interval_text(r, 'K')}"
        assert f"block {r['block_length']}" in line and "95 % CI [" in line
        assert ("not significant" in line) == (r["ci_low"] <= 0 <= r["ci_high"])
    assert "paired circular block bootstrap over" in printed


def test_evaluate_rejects_a_baseline_that_does_not_apply(trained, tmp_path, capsys):
    _, run = trained
    rc = main(["evaluate", str(run), "--baselines", "bilinear", "--out", str(tmp_path / "e")])
    assert rc == 2 and "do not apply to a forecast task" in capsys.readouterr().err


def test_predict_writes_cf_netcdf(trained, tmp_path):
    archive, run = trained
    out = tmp_path / "pred.nc"
    assert main(["predict", str(run), "--input", str(archive), "--output", str(out)]) == 0
    ds = xr.open_dataset(out, use_cftime=True)
    assert ds.attrs["Conventions"] == "CF-1.8" and "climatune predict" in ds.attrs["history"]
    assert ds.tas.attrs["units"] == "K" and ds.tas.attrs["standard_name"] == "air_temperature"
    assert ds.lat.attrs["standard_name"] == "latitude" and ds.lon.attrs["units"] == "degrees_east"
    with netCDF4.Dataset(out) as nc:
        assert nc["time"].calendar == "noleap"
    src = xr.open_dataset(archive, use_cftime=True)
    assert ds.time.values[0] == src.time.values[1]  # lead 1: the first prediction is for step 1
    assert 150 < float(ds.tas.mean()) < 350
    assert not list(tmp_path.glob(".pred.nc.tmp-*"))


def test_predict_masks_cells_that_are_nan_in_the_input(tmp_path):
    archive = tiny_archive(tmp_path / "tiny.nc")
    run = pretrain(tiny_config(archive, "trainer.max_epochs=1"), out=tmp_path / "run")
    out = tmp_path / "pred.nc"
    assert main(["predict", str(run), "--input", str(archive), "--output", str(out)]) == 0
    sst = xr.open_dataset(out).sst
    assert bool(sst.where(sst.lat >= 40).isnull().all())
    assert np.isfinite(sst.where(sst.lat < 30, drop=True)).all()


def test_curve_compares_finetuned_and_scratch(trained, tmp_path):
    archive, run = trained
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data:\n  path: {archive}\n  variables: [tas, sst]\n  targets: [tas]\n"
        "  split: {train: [2000, 2004], val: [2005, 2005], test: [2006, 2007]}\n"
        "model: {width: 8, depth: 1}\ntrainer: {max_epochs: 1, progress_bar: false}\n"
    )
    out = tmp_path / "curve"
    assert (
        main(
            [
                "curve",
                "--config",
                str(cfg),
                "--from",
                str(run),
                "--fractions",
                "0.5,1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = json.loads((out / "curve.json").read_text())
    rmse = [r for r in rows if r["metric"] == "rmse"]
    assert {(r["fraction"], r["model"]) for r in rmse} == {
        (f, m) for f in (0.5, 1.0) for m in ("finetuned", "scratch")
    }
    n = {r["fraction"]: r["n_train"] for r in rmse}
    assert n[0.5] < n[1.0]
    value = {(r["fraction"], r["model"]): r["value"] for r in rmse}
    diffs = [r for r in rows if r["metric"] == "rmse_diff"]
    assert [(r["fraction"], r["model"], r["reference"]) for r in diffs] == [
        (f, "finetuned", "scratch") for f in (0.5, 1.0)
    ]
    for r in diffs:
        gap = value[(r["fraction"], "finetuned")] - value[(r["fraction"], "scratch")]
        assert r["value"] == pytest.approx(gap) and r["ci_low"] <= gap <= r["ci_high"]
        # Two monthly test years less the first month (lead 1); blocks of 2 to n // 2 months.
        assert r["n_times"] == 23 and 2 <= r["block_length"] <= 11
    assert (out / "curve.png").exists()


def test_curve_fits_the_baselines_on_each_fractions_years(trained, tmp_path):
    """``baselines``: a fraction's climatology and damped persistence are fitted on that
    fraction's training years alone and scored on the same test times (the networks are
    reused through ``done``, so nothing trains here)."""
    archive, run = trained
    text = (
        f"data:\n  path: {archive}\n  variables: [tas, sst]\n  targets: [tas]\n"
        "  split: {train: [2000, 2004], val: [2005, 2005], test: [2006, 2007]}\n"
        "model: {width: 8, depth: 1}\ntrainer: {max_epochs: 1, progress_bar: false}\n"
    )
    (tmp_path / "c.yaml").write_text(text)
    cfg = load_config(tmp_path / "c.yaml")
    names = ["climatology", "damped_persistence"]
    out = curve_command(
        cfg, run, [0.5], tmp_path / "curve", done={0.5: (run, run)}, baselines=names
    )
    rows = json.loads((out / "curve.json").read_text())
    rmse = {r["model"]: r["value"] for r in rows if r["metric"] == "rmse"}
    assert set(rmse) == {"finetuned", "scratch", *names}
    skill = {r["model"]: r["value"] for r in rows if r["metric"] == "skill"}
    assert skill["climatology"] == pytest.approx(0.0, abs=1e-9)

    def fitted(fraction: float) -> dict[str, float]:
        sub = cfg.model_copy(deep=True)
        sub.data.train_fraction = fraction
        view = build_view(sub.data, sub.task)
        truth, w = view.truth("test"), view.weights()
        out = {}
        for name in names:
            pred = make_baseline(name).fit(view).predict(view, "test")
            got = score(pred, truth, model=name, task="forecast", weights=w)
            out[name] = next(r["value"] for r in got if r["metric"] == "rmse")
        return out

    half, full = fitted(0.5), fitted(1.0)
    for name in names:
        assert rmse[name] == pytest.approx(half[name], rel=1e-6)
        assert rmse[name] != pytest.approx(full[name], rel=1e-6)  # not the whole block's


def test_predict_on_an_explicit_cpu_device_matches_auto(trained, tmp_path):
    archive, run = trained
    paths = {d: tmp_path / f"{d}.nc" for d in ("cpu", "auto")}
    for device, out in paths.items():
        argv = ["predict", str(run), "--input", str(archive), "--output", str(out)]
        assert main([*argv, "--device", device]) == 0
    cpu, auto = (xr.open_dataset(p).tas.values for p in paths.values())
    np.testing.assert_allclose(auto, cpu, rtol=1e-4, atol=1e-3)  # K; auto is a GPU if present


@pytest.mark.parametrize("device", ["tpu", "cuda:0"])
def test_predict_rejects_a_device_torch_cannot_use(trained, tmp_path, capsys, device):
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    archive, run = trained
    out = tmp_path / "p.nc"
    argv = ["predict", str(run), "--input", str(archive), "--output", str(out)]
    assert main([*argv, "--device", device]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("climatune: error: ") and "device" in err and "\n" not in err
    assert not out.exists()


@pytest.fixture(scope="module")
def finetuned(trained, tmp_path_factory):
    """A fine-tune of ``trained`` and a network trained from scratch on the same task."""
    from climatune.data.view import build_view
    from climatune.workflows.finetuning import finetune
    from climatune.workflows.pretraining import train_scratch

    archive, run = trained
    root = tmp_path_factory.mktemp("ft")
    cfg = tiny_config(archive, "data.targets=[tas]", "trainer.max_epochs=1")
    ft = finetune(cfg, source=run, out=root / "ft", quiet=True)
    scratch = train_scratch(cfg, build_view(cfg.data, cfg.task), root / "scratch")
    return ft, scratch


def test_the_scratch_baseline_trains_every_weight_at_the_full_learning_rate(trained, tmp_path):
    """``optim.backbone_lr_scale`` slows a pre-trained backbone; a scratch network has none."""
    from safetensors.numpy import load_file

    from climatune.workflows.pretraining import train_scratch

    archive, _ = trained
    runs = {}
    for scale in (0.25, 1.0):
        cfg = tiny_config(archive, "trainer.max_epochs=1", f"optim.backbone_lr_scale={scale}")
        runs[scale] = train_scratch(cfg, build_view(cfg.data, cfg.task), tmp_path / str(scale))
    slowed, full = (load_file(runs[s] / "model" / "weights.safetensors") for s in (0.25, 1.0))
    assert slowed.keys() == full.keys()
    for name in full:
        np.testing.assert_array_equal(slowed[name], full[name], err_msg=name)
    assert load_config(runs[0.25] / "config.yaml").optim.backbone_lr_scale == 1.0


def _rmse(out) -> dict[str, float]:
    rows = json.loads((out / "metrics.json").read_text())
    return {r["model"]: r["value"] for r in rows if r["metric"] == "rmse"}


def test_a_scratch_network_is_labelled_scratch(finetuned, tmp_path):
    _, scratch = finetuned
    out = tmp_path / "e"
    assert main(["evaluate", str(scratch), "--baselines", "climatology", "--out", str(out)]) == 0
    assert set(_rmse(out)) == {"scratch", "climatology"}


def test_evaluate_reuses_a_scratch_run(finetuned, tmp_path, capsys):
    ft, scratch = finetuned
    alone, out = tmp_path / "alone", tmp_path / "e"
    assert main(["evaluate", str(scratch), "--baselines", "none", "--out", str(alone)]) == 0
    argv = ["evaluate", str(ft), "--baselines", "all", "--scratch", str(scratch), "--out", str(out)]
    assert main(argv) == 0
    rmse = _rmse(out)
    assert {"finetuned", "scratch", "climatology"} <= set(rmse)
    assert rmse["scratch"] == pytest.approx(_rmse(alone)["scratch"], rel=1e-6)
    assert (
        not (out / "scratch").exists()
        and "training the same network" not in capsys.readouterr().err
    )


def test_evaluate_says_when_it_trains_a_scratch_network(finetuned, tmp_path, capsys):
    ft, _ = finetuned
    out = tmp_path / "e"
    assert main(["evaluate", str(ft), "--baselines", "scratch", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "training the same network from scratch" in err and "--scratch RUN" in err
    assert (out / "scratch" / "model").is_dir() and "scratch" in _rmse(out)


def test_evaluate_refuses_a_scratch_run_of_another_task(finetuned, trained, tmp_path, capsys):
    ft, _ = finetuned
    archive, _ = trained
    cfg = tiny_config(archive, "data.targets=[sst]", "trainer.max_epochs=1")
    other = pretrain(cfg, out=tmp_path / "sst")  # predicts sst, the fine-tune tas
    rc = main(["evaluate", str(ft), "--scratch", str(other), "--out", str(tmp_path / "e")])
    assert rc == 2 and "does another task" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_flag_before_or_after_the_subcommand(where, tmp_path, capsys):
    argv = ["evaluate", str(tmp_path / "missing"), "--out", str(tmp_path / "e")]
    argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "climatune: error: model" in err and "unrecognized" not in err


@pytest.mark.parametrize(
    "change", ["task.lead=3", "task.history=2", "data.targets=[sst]", "task.kind=reconstruct"]
)
def test_evaluate_refuses_a_config_of_another_task_than_the_models(
    trained, tmp_path, capsys, change
):
    _, run = trained  # a lead-1, history-1 forecast of tas
    rc = main(["evaluate", str(run), "--set", change, "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert rc == 2 and "another task than the model was trained for" in err, err
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("which", ["itself", "its parent"])
def test_scratch_must_be_a_network_trained_from_scratch(
    finetuned, trained, tmp_path, capsys, which
):
    ft, _ = finetuned
    other = ft if which == "itself" else trained[1]
    rc = main(["evaluate", str(ft), "--scratch", str(other), "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert rc == 2 and ("the evaluated model itself" in err or "pre-trained parent" in err), err


def test_predict_refuses_inputs_without_units(trained, tmp_path, capsys):
    archive, run = trained
    ds = xr.open_dataset(archive)
    ds["tas"] = (ds.tas - 273.15).assign_attrs({})  # °C with its units attribute lost
    del ds["tas"].attrs["units"]
    ds.to_netcdf(tmp_path / "c.nc")
    rc = main(
        ["predict", str(run), "--input", str(tmp_path / "c.nc"), "--output", str(tmp_path / "p.nc")]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "'tas' has no units attribute" in err and "'K'" in err, err
    assert not (tmp_path / "p.nc").exists()


def test_evaluate_scores_data_in_other_units_in_the_models(trained, tmp_path, caplog):
    """sst in mK (1000 per K) is scored in the model's K: the same metrics as the K file."""
    archive, run = trained
    ds = xr.open_dataset(archive).load()
    ds["sst"] = (ds.sst * 1000).assign_attrs(ds.sst.attrs, units="mK")
    ds.to_netcdf(tmp_path / "mk.nc")
    assert (
        main(["evaluate", str(run), "--baselines", "persistence", "--out", str(tmp_path / "k")])
        == 0
    )
    argv = ["evaluate", str(run), "--baselines", "persistence", "--out", str(tmp_path / "mk")]
    with caplog.at_level("WARNING", logger="climatune"):
        assert main([*argv, "--set", f"data.path={tmp_path / 'mk.nc'}"]) == 0
    assert caplog.text.count("note: units converted to the model's: sst: mK -> K") == 1
    rows = {
        d: {
            (r["model"], r["variable"], r["metric"]): r["value"]
            for r in json.loads((tmp_path / d / "metrics.json").read_text())
        }
        for d in ("k", "mk")
    }
    assert rows["k"].keys() == rows["mk"].keys()
    for key, value in rows["k"].items():
        assert rows["mk"][key] == pytest.approx(value, rel=1e-4, abs=1e-4), key


def test_curve_over_seeds_reports_mean_spread_pooled_interval_and_baselines(trained, tmp_path):
    archive, run = trained
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data:\n  path: {archive}\n  variables: [tas, sst]\n  targets: [tas]\n"
        "  split: {train: [2000, 2004], val: [2005, 2005], test: [2006, 2007]}\n"
        "model: {width: 8, depth: 1}\ntrainer: {max_epochs: 1, progress_bar: false}\nseed: 5\n"
    )
    out = tmp_path / "curve"
    argv = ["curve", "--config", str(cfg), "--from", str(run), "--fractions", "1", "--out"]
    assert main([*argv, str(out), "--seeds", "2", "--baselines", "climatology,persistence"]) == 0
    rows = json.loads((out / "curve.json").read_text())
    rmse = {r["model"]: r for r in rows if r["metric"] == "rmse"}
    assert set(rmse) == {"finetuned", "scratch", "climatology", "persistence"}
    # each seed's runs are kept, and the row is their mean and sample spread
    for model in ("finetuned", "scratch"):
        row = rmse[model]
        per_seed = [
            (
                out / "fraction-1" / f"seed-{s}" / model / "model" / "weights.safetensors"
            ).read_bytes()
            for s in (5, 6)
        ]
        assert row["n_seeds"] == 2 and len(row["values"]) == 2
        assert row["value"] == pytest.approx(np.mean(row["values"]))
        assert row["std"] == pytest.approx(np.std(row["values"], ddof=1))
        assert per_seed[0] != per_seed[1]  # the seeds trained different networks
    assert "n_seeds" not in rmse["climatology"]  # baselines do not depend on the seed
    # the gap pools both seeds' errors: its RMSEs lie between the seeds' own
    (diff,) = [r for r in rows if r["metric"] == "rmse_diff"]
    assert diff["n_seeds"] == 2 and diff["ci_low"] <= diff["value"] <= diff["ci_high"]
    lo = min(rmse["finetuned"]["values"]) - max(rmse["scratch"]["values"])
    hi = max(rmse["finetuned"]["values"]) - min(rmse["scratch"]["values"])
    assert lo - 1e-9 <= diff["value"] <= hi + 1e-9
    assert (out / "curve.png").stat().st_size > 0
    assert main(["report", str(out)]) == 0
    text = (out / "report.html").read_text()
    assert f"{rmse['finetuned']['value']:.4g} ± {rmse['finetuned']['std']:.2g}" in text
    assert "mean ± standard deviation over 2 seeds" in text
    assert "best baseline RMSE" in text


@pytest.mark.parametrize("seeds", ["0", "33", "x"])
def test_curve_refuses_a_bad_seed_count(trained, tmp_path, capsys, seeds):
    archive, run = trained
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data:\n  path: {archive}\n  variables: [tas]\n")
    out = tmp_path / "curve"
    argv = ["curve", "--config", str(cfg), "--from", str(run), "--out", str(out)]
    assert main([*argv, "--seeds", seeds]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("climatune: error:") and "--seeds" in err[-1]
    assert not out.exists()
