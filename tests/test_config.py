"""Config loading: YAML errors with line numbers, typed values, dotted overrides."""

from __future__ import annotations

import pytest

from climatune.config import dump_config, load_config
from climatune.errors import ClimatuneError


def test_overrides_reach_nested_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  path: a.nc\ntrainer:\n  max_epochs: 5\n")
    cfg = load_config(
        path,
        [
            "trainer.max_epochs=1",
            "data.path=/some/store.zarr",
            "optim.lr=3e-4",
            "data.region.lat=[10, 20]",
            "data.region.lon=[350, 10]",
        ],
    )
    assert cfg.trainer.max_epochs == 1
    assert cfg.data.path == "/some/store.zarr"
    assert cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.data.region.lon == (350.0, 10.0)


def test_unknown_key_names_the_closest(tmp_path):
    with pytest.raises(
        ClimatuneError, match="unknown config key 'optim.lerning_rate'.*'optim.lr'|did you mean"
    ):
        load_config(None, ["optim.lerning_rate=1"])
    with pytest.raises(ClimatuneError, match="did you mean 'trainer.max_epochs'"):
        load_config(None, ["trainer.max_epoch=1"])


def test_yaml_syntax_error_gives_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  path: a.nc\n  variables: [tas\ntask:\n  kind: forecast\n")
    with pytest.raises(ClimatuneError, match=r"line \d+"):
        load_config(path)


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("optim.lr=-1", "learning rate must be positive"),
        ("optim.lr=0", "learning rate must be positive"),
        ("trainer.max_epochs=many", "trainer.max_epochs"),
        ("task.kind=nowcast", "task.kind"),
        ("data.split.train=[2000, 1990]", "starts after it ends"),
    ],
)
def test_bad_values_are_user_errors(override, pattern):
    with pytest.raises(ClimatuneError, match=pattern):
        load_config(None, [override, "data.split.val=[1,2]"] if "split" in override else [override])


def test_dump_round_trips(tmp_path):
    cfg = load_config(
        None,
        [
            "task.kind=downscale",
            "data.split.train=[[1900, 1950], [1970, 1990]]",
            "data.split.val=[1952, 1968]",
        ],
    )
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg


def test_old_task_patch_is_read_as_mask_patch_with_a_warning(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("task:\n  kind: reconstruct\n  patch: 2\nmodel:\n  backbone: unet\n")
    with pytest.warns(FutureWarning, match=r"task\.patch is now task\.mask_patch"):
        cfg = load_config(path)
    assert cfg.task.mask_patch == 2
    assert "patch:" not in dump_config(cfg).split("model:")[0].replace("mask_patch:", "")


def test_old_and_new_mask_patch_together_are_refused():
    with pytest.raises(ClimatuneError, match="give only task.mask_patch"):
        load_config(None, ["task.patch=2", "task.mask_patch=4"])
