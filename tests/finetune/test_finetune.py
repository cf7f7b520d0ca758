"""Fine-tuning: weights really loaded, inputs adapted by name, units checked, strategies."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr
from safetensors.torch import load_file

from climatune import load_model
from climatune.cli import main
from climatune.data.normalize import Normalizer
from climatune.data.view import build_view
from climatune.errors import ClimatuneError
from climatune.finetune.transfer import merged_normalizer
from climatune.testing import create_test_data, tiny_archive, tiny_config
from climatune.workflows.finetuning import finetune, prepare_finetune
from climatune.workflows.pretraining import pretrain
from climatune.workflows.runs import write_config


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A parent normalised globally: the policies' tests read its per-variable means."""
    root = tmp_path_factory.mktemp("pre")
    archive = tiny_archive(root / "tiny.nc")
    return archive, pretrain(tiny_config(archive, "data.normalization=global"), out=root / "run")


def test_pretrained_weights_are_really_loaded(pretrained):
    archive, run = pretrained
    saved = load_file(str(run / "model" / "weights.safetensors"))
    _, _, _, net, report = prepare_finetune(tiny_config(archive), run)
    state = net.state_dict()
    assert report.kept == ["tas", "sst"] and not report.added and not report.dropped
    for key, value in state.items():
        assert torch.equal(value, saved[key]), key
    fresh = type(net).from_spec(net.spec()).state_dict()
    conv = [
        k
        for k in state
        if k.startswith("backbone.") and k.endswith("weight") and state[k].dim() == 4
    ]
    assert conv and all(not torch.equal(state[k], fresh[k]) for k in conv)


def test_inputs_are_adapted_by_variable_name(pretrained, tmp_path):
    archive, run = pretrained
    cfg = tiny_config(archive, "data.variables=[tas, pr]")
    _, _, _, net, report = prepare_finetune(cfg, run)
    assert (report.kept, report.added, report.dropped) == (["tas"], ["pr"], ["sst"])
    assert net.variables == ["tas", "pr"]
    saved = load_file(str(run / "model" / "weights.safetensors"))
    assert torch.equal(net.stem.proj["tas"].weight, saved["stem.proj.tas.weight"])
    assert torch.count_nonzero(net.stem.proj["pr"].weight) == 0  # fresh, zero-initialised


def test_new_head_when_outputs_change(pretrained):
    archive, run = pretrained
    _, _, _, net, report = prepare_finetune(tiny_config(archive, "data.targets=[tas]"), run)
    assert report.new_head and net.head.n_out == 1


def test_incompatible_units_are_exit_2(pretrained, tmp_path, capsys):
    archive, run = pretrained
    ds = create_test_data(ntime=96, nlat=8, nlon=16)
    ds["tas"] = ds.tas.assign_attrs(units="m")
    ds["sst"] = ds.tas.where(ds.lat < 40).assign_attrs(units="K")
    metres = tmp_path / "metres.nc"
    ds.to_netcdf(metres)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data:\n  path: {metres}\n  variables: [tas, sst]\n")
    rc = main(["finetune", "--config", str(cfg), "--from", str(run), "--out", str(tmp_path / "ft")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0].startswith(
        "climatune: error: variable 'tas' is in 'm', which cannot be converted to the 'K' of "
        "the pre-trained model"
    )
    assert not (tmp_path / "ft" / "model").exists()


def _in_celsius(archive, path):
    ds = xr.open_dataset(archive).load()
    for name in ("tas", "sst"):
        ds[name] = (ds[name] - 273.15).assign_attrs(ds[name].attrs, units="degC")
    ds.to_netcdf(path)
    return path


def test_celsius_data_is_converted_to_the_parents_kelvin_and_reported(pretrained, tmp_path):
    archive, run = pretrained
    celsius = _in_celsius(archive, tmp_path / "celsius.nc")
    _, view, normalizer, _, report = prepare_finetune(tiny_config(celsius), run)
    assert "units converted to the pre-trained model's: tas: degC -> K, sst: degC -> K" in (
        report.lines()
    )
    assert "statistics:     kept tas, sst; refitted -" in report.lines()  # no shift: same K
    with xr.open_dataset(celsius) as c, xr.open_dataset(archive) as k:
        assert view.fields.tas.attrs["units"] == "K" and view.fields.tas.dtype == np.float64
        np.testing.assert_array_equal(view.fields.tas.values, c.tas.values.astype("f8") + 273.15)
        np.testing.assert_allclose(view.fields.sst.values, k.sst.values, rtol=0, atol=1e-4)
    assert normalizer.mean_["tas"] == load_model(run).normalizer.mean_["tas"]


def test_finetune_on_celsius_learns_what_kelvin_does(pretrained, tmp_path, capsys):
    """The CLI fine-tune on a °C copy reports the conversion; its model is the K one's."""
    archive, run = pretrained
    sets = ("trainer.max_epochs=1", "seed=3")
    in_k = finetune(tiny_config(archive, *sets), run, out=tmp_path / "k", quiet=True)
    (tmp_path / "c").mkdir()
    write_config(tmp_path / "c", tiny_config(_in_celsius(archive, tmp_path / "c.nc"), *sets))
    argv = ["finetune", "--config", str(tmp_path / "c" / "config.yaml"), "--from", str(run)]
    assert main([*argv, "--out", str(tmp_path / "ft")]) == 0
    err = capsys.readouterr().err
    assert "units converted to the pre-trained model's: tas: degC -> K, sst: degC -> K" in err
    a, b = load_model(in_k), load_model(tmp_path / "ft")
    assert b.meta.units("inputs") == {"tas": "K", "sst": "K"}
    pa, pb = (m.predict(xr.open_dataset(archive)) for m in (a, b))
    for name in ("tas", "sst"):
        np.testing.assert_allclose(pb[name].values, pa[name].values, rtol=0, atol=1e-3)


def test_a_different_grid_works(pretrained, tmp_path):
    _, run = pretrained
    other = tiny_archive(tmp_path / "other.nc", nlat=12, nlon=20, seed=3)
    out = finetune(tiny_config(other, "trainer.max_epochs=1"), run, out=tmp_path / "ft", quiet=True)
    model = load_model(out)
    assert model.meta.data["parent"].endswith("model")
    assert len(model.meta.data["grid"]["lat"]) == 12


@pytest.mark.parametrize("strategy", ["linear_probe", "partial", "gradual", "lora"])
def test_strategies_train_what_they_say(pretrained, tmp_path, strategy):
    archive, run = pretrained
    cfg = tiny_config(
        archive,
        f"finetune.strategy={strategy}",
        "finetune.freeze_stages=1",
        "finetune.unfreeze_epoch=1",
        "trainer.max_epochs=2",
        "optim.lr=1e-2",
    )
    before = load_file(str(run / "model" / "weights.safetensors"))
    after = load_file(
        str(
            finetune(cfg, run, out=tmp_path / strategy, quiet=True)
            / "model"
            / "weights.safetensors"
        )
    )
    changed = {k for k in before if k in after and not torch.equal(before[k], after[k])}
    backbone = {k for k in before if k.startswith("backbone.")}
    assert any(k.startswith("head.") for k in changed)
    if strategy == "linear_probe":
        assert not changed & backbone
    elif strategy == "partial":
        net = load_model(run).net
        frozen = {id(p) for p in net.backbone.stages()[0].parameters()}
        first = {k for k, p in net.named_parameters() if id(p) in frozen}
        assert first and not changed & first
        assert changed & (backbone - first)
    elif strategy in ("gradual", "lora"):
        assert changed & backbone  # unfrozen at epoch 1 / adapters merged into the weights
    assert set(after) == set(before)  # LoRA merged: plain keys only


def test_normalisation_policy_keep_or_refit(pretrained, tmp_path):
    archive, run = pretrained
    warm = tiny_archive(tmp_path / "warm.nc", seed=1)
    ds = xr.open_dataset(warm).load()
    ds["tas"] = ds.tas + 10
    ds.to_netcdf(tmp_path / "warmer.nc")
    auto = prepare_finetune(tiny_config(tmp_path / "warmer.nc"), run)
    keep = prepare_finetune(
        tiny_config(tmp_path / "warmer.nc", "finetune.normalization.default=keep"), run
    )[2]
    refit = prepare_finetune(
        tiny_config(tmp_path / "warmer.nc", "finetune.normalization.default=refit"), run
    )[2]
    parent = load_model(run).normalizer
    assert auto[2].mean_["tas"] == keep.mean_["tas"] == parent.mean_["tas"]  # a harmless shift
    assert "statistics:     kept tas, sst; refitted -" in auto[4].lines()
    assert refit.mean_["tas"] == pytest.approx(parent.mean_["tas"] + 10, abs=1.0)


def _parent_at(run, mean: float, std: float):
    """The pre-trained model, with the issue's stored ``tas`` statistics (287.7 ± 11.3 K)."""
    parent = load_model(run)
    stored = {"mean": {"tas": mean}, "std": {"tas": std}, "units": {"tas": "K"}}
    parent.normalizer = parent.normalizer.merge(Normalizer.from_dict(stored), ["tas"])
    return parent


def _tas_file(tmp_path, name: str, mean: float, std: float):
    """The tiny archive with ``tas`` rescaled to ``mean ± std``, still labelled K."""
    ds = xr.open_dataset(tiny_archive(tmp_path / "base.nc")).load()
    tas = (ds.tas - ds.tas.mean()) / ds.tas.std() * std + mean
    ds["tas"] = tas.astype("f4").assign_attrs(ds.tas.attrs)
    ds.to_netcdf(tmp_path / name)
    return tmp_path / name


def test_auto_refits_anomalies_against_absolute_values_and_says_so(pretrained, tmp_path):
    _, run = pretrained
    cfg = tiny_config(_tas_file(tmp_path, "anomalies.nc", 0.0, 1.0))
    norm, lines = merged_normalizer(
        _parent_at(run, 287.7, 11.3), build_view(cfg.data, cfg.task), cfg.finetune.normalization
    )
    mean = norm.mean_["tas"]  # the training years' anomalies, not the 287.7 K stored
    assert abs(mean) < 0.5 and norm.std_["tas"] == pytest.approx(1.0, abs=0.2)
    apart = (287.7 - mean) / 11.3
    assert apart > 25
    assert lines == [
        "statistics:     kept sst; refitted tas",
        f"statistics of tas refitted: mean {mean:.4g} ± {norm.std_['tas']:.3g} against the "
        f"stored 287.7 ± 11.3 ({apart:.1f} stored stds apart)",
    ]


def test_auto_keeps_a_small_shift(pretrained, tmp_path):
    _, run = pretrained
    cfg = tiny_config(_tas_file(tmp_path, "warmer.nc", 287.7 + 3.0, 12.0))
    norm, lines = merged_normalizer(
        _parent_at(run, 287.7, 11.3), build_view(cfg.data, cfg.task), cfg.finetune.normalization
    )
    assert norm.mean_["tas"] == 287.7 and norm.std_["tas"] == 11.3
    assert lines == ["statistics:     kept tas, sst; refitted -"]


def test_keep_refuses_shifted_statistics_unless_forced(pretrained, tmp_path):
    _, run = pretrained
    parent, path = _parent_at(run, 287.7, 11.3), _tas_file(tmp_path, "anomalies.nc", 0.0, 1.0)
    keep = tiny_config(path, "finetune.normalization.variables={tas: keep}")
    with pytest.raises(ClimatuneError) as err:
        merged_normalizer(parent, build_view(keep.data, keep.task), keep.finetune.normalization)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("'tas' here is not distributed like the pre-trained model's")
    assert "set finetune.normalization.variables.tas=refit (or auto), or force_keep" in str(
        err.value
    )
    forced = tiny_config(path, "finetune.normalization.variables={tas: force_keep}")
    norm, lines = merged_normalizer(
        parent, build_view(forced.data, forced.task), forced.finetune.normalization
    )
    assert norm.mean_["tas"] == 287.7
    assert lines[0] == "statistics:     kept tas, sst; refitted -"
    assert lines[1].startswith("statistics of tas kept (force_keep): mean ")


def test_new_weights_come_from_the_seed(pretrained):
    archive, run = pretrained

    def new_head(seed: int, noise: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(noise)  # whatever state the global generator is in
        net = prepare_finetune(tiny_config(archive, "data.targets=[tas]", f"seed={seed}"), run)[3]
        return net.head.state_dict()

    first, again, other = new_head(0, noise=1), new_head(0, noise=2), new_head(1, noise=1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_a_fine_tune_depends_only_on_its_seed(pretrained, tmp_path):
    archive, run = pretrained
    sets = ("data.targets=[tas]", "finetune.strategy=lora", "trainer.max_epochs=1")

    def weights(name: str, seed: int, noise: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(noise)
        cfg = tiny_config(archive, *sets, f"seed={seed}")
        out = finetune(cfg, run, out=tmp_path / name, quiet=True)
        return load_file(str(out / "model" / "weights.safetensors"))

    first, again, other = weights("a", 0, 1), weights("b", 0, 2), weights("c", 1, 1)
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_sharing_no_input_transfers_the_backbone(pretrained, tmp_path, capsys):
    archive, run = pretrained
    saved = load_file(str(run / "model" / "weights.safetensors"))
    cfg = tiny_config(
        archive,
        "data.variables=[pr]",
        "data.targets=[pr]",
        "finetune.strategy=linear_probe",
        "trainer.max_epochs=1",
    )
    _, _, _, net, report = prepare_finetune(cfg, run)
    assert (report.kept, report.added, report.dropped) == ([], ["pr"], ["tas", "sst"])
    line = (
        "variable change: no input is shared with the pre-trained model; all of its inputs "
        "(tas, sst) dropped, pr added, backbone transferred"
    )
    assert line in report.lines()
    backbone = [k for k in net.state_dict() if k.startswith("backbone.")]
    assert backbone and all(torch.equal(net.state_dict()[k], saved[k]) for k in backbone)

    out = finetune(cfg, run, out=tmp_path / "ft")
    assert line in " ".join(capsys.readouterr().err.split())
    after = load_file(str(out / "model" / "weights.safetensors"))
    assert all(torch.equal(after[k], saved[k]) for k in backbone)  # frozen: the parent's
    assert load_model(out).net.variables == ["pr"]


def test_finetune_artifact_records_its_parent(pretrained, tmp_path):
    archive, run = pretrained
    out = finetune(
        tiny_config(archive, "trainer.max_epochs=1"), run, out=tmp_path / "ft", quiet=True
    )
    meta = json.loads((out / "model" / "climatune.json").read_text())
    assert meta["parent"] == str(run / "model")
    assert np.isfinite(meta["normalization"]["std"]["sst"])


def test_bad_source_is_a_user_error(tmp_path):
    with pytest.raises(ClimatuneError, match="does not exist"):
        load_model(tmp_path / "nope")


def test_a_fine_tune_refits_the_climatology_and_applies_the_policy_to_the_scale(tmp_path):
    archive = tiny_archive(tmp_path / "tiny.nc")
    run = pretrain(tiny_config(archive, "trainer.max_epochs=1"), out=tmp_path / "run")
    ds = xr.open_dataset(tiny_archive(tmp_path / "other.nc", seed=1)).load()
    ds["tas"] = (ds.tas + 10 * np.cos(2 * np.pi * ds.time.dt.month / 12)).assign_attrs(units="K")
    ds.to_netcdf(tmp_path / "seasonal.nc")
    parent = load_model(run).normalizer
    auto = prepare_finetune(tiny_config(tmp_path / "seasonal.nc"), run)
    refit = prepare_finetune(
        tiny_config(tmp_path / "seasonal.nc", "finetune.normalization.default=refit"), run
    )[2]
    want = ds.tas.sel(time=slice("2000", "2004")).groupby("time.month").mean("time").values
    for norm in (auto[2], refit):
        np.testing.assert_allclose(norm.climatology_["tas"], want, atol=1e-3)
    assert np.abs(parent.climatology_["tas"] - want).max() > 5  # the parent's is not kept
    assert auto[2].std_["tas"] == parent.std_["tas"]  # the anomalies' scale is kept ...
    assert refit.std_["tas"] != parent.std_["tas"]  # ... or refitted, as the policy says
    assert auto[4].lines()[-2:] == [
        "statistics:     kept tas, sst; refitted -",
        "climatology:    refitted on this data (tas, sst)",
    ]


def test_a_fine_tune_is_in_its_parents_mode(pretrained, tmp_path):
    archive, global_run = pretrained  # monthly data, where auto alone would pick anomaly
    anomaly_run = pretrain(tiny_config(archive, "trainer.max_epochs=1"), out=tmp_path / "run")
    for run, mode in ((global_run, "global"), (anomaly_run, "anomaly")):
        for choice in ("auto", mode):
            norm = prepare_finetune(tiny_config(archive, f"data.normalization={choice}"), run)[2]
            assert bool(norm.climatology_) == (mode == "anomaly"), (run, choice)
    for run, mode, other, learnt in (
        (global_run, "global", "anomaly", "globally z-scored values"),
        (anomaly_run, "anomaly", "global", "anomalies from a climatology"),
    ):
        with pytest.raises(ClimatuneError) as err:
            prepare_finetune(tiny_config(archive, f"data.normalization={other}"), run)
        assert str(err.value) == (
            f"data.normalization={other}, but the pre-trained model learnt {learnt} "
            f"(data.normalization={mode}), and a fine-tune keeps what it learnt: set "
            f"data.normalization to auto or {mode}, or pretrain with {other}"
        )


def test_keep_refuses_anomalies_of_another_spread(tmp_path):
    archive = tiny_archive(tmp_path / "tiny.nc")
    run = pretrain(tiny_config(archive, "trainer.max_epochs=1"), out=tmp_path / "run")
    stored = load_model(run).normalizer.std_["tas"]
    ds = xr.open_dataset(archive).load()
    train = ds.tas.sel(time=slice("2000", "2004")).groupby("time.month").mean("time")
    clim = train.sel(month=ds.time.dt.month).drop_vars("month")
    for factor, how in ((20.0, "wider"), (0.05, "narrower")):
        tas = (clim + factor * (ds.tas - clim)).astype("f4").assign_attrs(ds.tas.attrs)
        ds.assign(tas=tas).to_netcdf(tmp_path / f"{how}.nc")
        keep = tiny_config(tmp_path / f"{how}.nc", "finetune.normalization.default=keep")
        with pytest.raises(ClimatuneError, match=rf"'tas' here is not .*x {how}\)"):
            prepare_finetune(keep, run)
        _, _, norm, _, report = prepare_finetune(tiny_config(tmp_path / f"{how}.nc"), run)
        assert norm.std_["tas"] == pytest.approx(factor * stored, rel=1e-3)  # auto refits
        assert any(line.endswith(f"x {how})") for line in report.lines())
    # °C labelled K shifts the climatology, not the anomalies: keep keeps their scale
    ds.assign(tas=(ds.tas - 273.15).assign_attrs(ds.tas.attrs)).to_netcdf(tmp_path / "c.nc")
    keep = tiny_config(tmp_path / "c.nc", "finetune.normalization.default=keep")
    norm = prepare_finetune(keep, run)[2]
    assert norm.std_["tas"] == stored and float(norm.climatology_["tas"].mean()) < 100
