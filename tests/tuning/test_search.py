"""``climatune tune`` end to end: studies resume, workers share them, outputs run as they are."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

import climatune
from climatune.cli import main
from climatune.config import load_config
from climatune.errors import ClimatuneError
from climatune.testing import tiny_config
from climatune.tuning import objective as objective_module
from climatune.tuning.search import load_space_for, tune_command

from .conftest import ANNUAL, SPACE

PNG = b"\x89PNG\r\n\x1a\n"


def _study(out: Path, name: str = "climatune") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "trials.csv").open() as fh:
        return list(csv.DictReader(fh))


def _without(raw: dict, keys) -> dict:
    raw = yaml.safe_load(yaml.safe_dump(raw))
    for key in keys:
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node[part]
        node.pop(leaf)
    return raw


@pytest.fixture
def fake_folds(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Skip training: fold ``k`` of trial ``n`` scores ``n + 1 + k / 10``; records the calls."""
    calls: list[tuple[int, int]] = []

    def train(cfg, view, source, run: Path) -> Path:
        calls.append((int(run.parent.name), int(run.name.removeprefix("fold-"))))
        run.mkdir(parents=True, exist_ok=True)
        return run

    def score(view, model_dir: Path, metric: str = "rmse") -> float:
        return int(model_dir.parent.name) + 1 + int(model_dir.name.removeprefix("fold-")) / 10

    monkeypatch.setattr(objective_module, "train_fold", train)
    monkeypatch.setattr(objective_module, "score_fold", score)
    return calls


@pytest.mark.slow
def test_tune_from_a_pretrained_model_writes_a_runnable_best_config(
    tiny_nc: Path, tmp_path: Path
) -> None:
    from climatune.workflows.finetuning import finetune
    from climatune.workflows.pretraining import pretrain

    base = tiny_config(tiny_nc, *ANNUAL)
    pretrain(base, out=tmp_path / "pre")
    tuned = {k: v for k, v in SPACE.items() if not k.startswith("model.")}
    tuned["finetune.strategy"] = {"type": "categorical", "choices": ["full", "linear_probe"]}
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(tuned))
    out = tmp_path / "tune"
    tune_command(base, source=tmp_path / "pre", space=space, trials=2, folds=2, out=out)

    study = _study(out)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert all(len(t.user_attrs["fold_values"]) == 2 for t in study.trials)
    rows = _rows(out)
    assert {"number", "state", "value", "duration_s", "fold_0", "fold_1"} <= set(rows[0])
    assert {f"params_{k}" for k in tuned} <= set(rows[0])
    for name in ("tune_history.png", "tune_importance.png"):
        assert (out / name).read_bytes().startswith(PNG)
    # Fold runs keep their config and small logs, not their weights.
    assert (out / "trials" / "1" / "fold-1" / "config.yaml").exists()
    assert not list(out.glob("trials/*/fold-*/checkpoints"))
    assert not list(out.glob("trials/*/fold-*/model"))

    best = load_config(out / "best.yaml")
    params = study.best_trial.params
    assert best.finetune.strategy == params["finetune.strategy"]
    assert best.optim.lr == params["optim.lr"] and best.data.batch_size == params["data.batch_size"]
    assert _without(best.model_dump(mode="json"), tuned) == _without(
        base.model_dump(mode="json"), tuned
    )
    assert "mean validation rmse over 2 folds" in (out / "best.yaml").read_text()
    run = finetune(best, tmp_path / "pre", out=tmp_path / "best", quiet=True)  # runs as it is
    assert (run / "model" / "weights.safetensors").exists()


def test_the_same_command_again_resumes_the_study(
    tiny_files: tuple[Path, Path], tmp_path: Path, fake_folds: list[tuple[int, int]]
) -> None:
    cfg_path, space = tiny_files
    base = load_config(cfg_path)
    out = tmp_path / "tune"
    tune_command(base, space=space, trials=3, folds=2, out=out)
    assert len(_study(out).trials) == 3
    tune_command(base, space=space, trials=3, folds=2, out=out)
    study = _study(out)
    assert [t.number for t in study.trials] == list(range(6))
    assert [r["number"] for r in _rows(out)] == [str(i) for i in range(6)]
    best = load_config(out / "best.yaml")
    assert study.best_trial.number == 0 and best.optim.lr == study.best_trial.params["optim.lr"]
    assert _without(best.model_dump(mode="json"), SPACE) == _without(
        base.model_dump(mode="json"), SPACE
    )
    assert best.data.split == base.data.split


@pytest.mark.slow
def test_two_processes_share_one_study(tiny_files: tuple[Path, Path], tmp_path: Path) -> None:
    cfg_path, space = tiny_files
    out = tmp_path / "tune"
    cmd = [
        *(sys.executable, "-m", "climatune", "tune", "--config", str(cfg_path)),
        *("--space", str(space), "--trials", "1", "--folds", "2", "--out", str(out)),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    study = _study(out)
    assert sorted(t.number for t in study.trials) == [0, 1]
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    assert len(_rows(out)) == 2
    assert load_config(out / "best.yaml").optim.lr == study.best_trial.params["optim.lr"]


def test_unknown_space_key_is_one_line_and_exit_2(
    tiny_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg_path, _ = tiny_files
    space = tmp_path / "bad.yaml"
    space.write_text("optim.weight_decy: {type: float, low: 1.0e-4, high: 1.0e-2}\n")
    out = tmp_path / "tune"
    rc = main(["tune", "--config", str(cfg_path), "--space", str(space), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith(
        "climatune: error: unknown config key 'optim.weight_decy'"
    )
    assert "did you mean 'optim.weight_decay'" in err[0]
    assert not out.exists()


def test_user_error_inside_a_trial_stops_the_study(
    tiny_files: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    def train(*args, **kwargs):
        raise ClimatuneError("finetune.freeze_stages=9 but the backbone has 2 stages")

    monkeypatch.setattr(objective_module, "train_fold", train)
    cfg_path, space = tiny_files
    rc = main(
        [
            "tune",
            "--config",
            str(cfg_path),
            "--space",
            str(space),
            "--trials",
            "3",
            "--out",
            str(tmp_path / "t"),
        ]
    )
    err = capfd.readouterr().err
    assert rc == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("climatune:")]
    assert lines == [
        "climatune: error: trial 0: finetune.freeze_stages=9 but the backbone has 2 stages"
    ]
    assert len(_study(tmp_path / "t").trials) == 1


def test_pruner_stops_bad_trials_between_folds(
    tiny_files: tuple[Path, Path], tmp_path: Path, fake_folds: list[tuple[int, int]]
) -> None:
    cfg_path, space = tiny_files
    out = tune_command(load_config(cfg_path), space=space, trials=6, folds=2, out=tmp_path / "t")
    states = [r["state"] for r in _rows(out)]
    # Each trial scores worse than every earlier one: after 3 complete, the rest stop after fold 0.
    assert states == ["COMPLETE"] * 3 + ["PRUNED"] * 3
    assert fake_folds == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (4, 0), (5, 0)]
    study = _study(out)
    assert study.trials[1].intermediate_values == {0: 2.0, 1: pytest.approx(2.05)}  # running means
    assert study.best_value == pytest.approx(1.05)
    assert _rows(out)[3]["fold_0"] == "4.0" and _rows(out)[3]["fold_1"] == ""


def test_parallel_jobs_and_trials_zero(
    tiny_files: tuple[Path, Path], tmp_path: Path, fake_folds: list[tuple[int, int]]
) -> None:
    cfg_path, space = tiny_files
    cfg = load_config(cfg_path)
    out = tune_command(cfg, space=space, trials=4, folds=2, jobs=2, out=tmp_path / "t")
    assert len(_study(out).trials) == 4 and len(fake_folds) >= 4 * 1
    (out / "trials.csv").unlink()
    tune_command(cfg, space=space, trials=0, folds=2, out=out)  # rewrites the outputs only
    assert len(_rows(out)) == 4


def test_resuming_with_other_folds_is_refused(
    tiny_files: tuple[Path, Path], tmp_path: Path, fake_folds: list[tuple[int, int]]
) -> None:
    cfg_path, space = tiny_files
    cfg = load_config(cfg_path)
    tune_command(cfg, space=space, trials=1, folds=2, out=tmp_path / "t")
    with pytest.raises(ClimatuneError, match="was run with --folds 2, not 3"):
        tune_command(cfg, space=space, trials=1, folds=3, out=tmp_path / "t")
    tune_command(cfg, space=space, trials=1, folds=3, study="other", out=tmp_path / "t")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"folds": 1}, "--folds 1 must be between 2"),
        # 24 non-test years in 20 folds: 1-year blocks, too short for history 1 + lead 1.
        ({"folds": 20}, r"fold \d+ of 20: the val block \d+-\d+ leaves no samples.*use fewer"),
        ({"trials": -1}, "--trials must be >= 0"),
        ({"metric": "r2"}, "unknown metric 'r2'"),
        ({"storage": "not a url"}, "is not a database URL"),
    ],
)
def test_bad_arguments(
    tiny_files: tuple[Path, Path], tmp_path: Path, kwargs: dict, match: str
) -> None:
    cfg_path, space = tiny_files
    args = {"space": space, "trials": 1, "folds": 2, "out": tmp_path / "t"} | kwargs
    with pytest.raises(ClimatuneError, match=match):
        tune_command(load_config(cfg_path), **args)


def test_space_must_suit_training_with_or_without_from(
    tiny_files: tuple[Path, Path], tmp_path: Path
) -> None:
    cfg_path, space = tiny_files
    cfg = load_config(cfg_path)
    ft = tmp_path / "ft.yaml"
    ft.write_text("finetune.strategy: {type: categorical, choices: [full, partial]}\n")
    with pytest.raises(ClimatuneError, match="only matters when fine-tuning; give --from"):
        load_space_for(cfg, ft, None)
    with pytest.raises(ClimatuneError, match="'model.dropout' has no effect with --from"):
        load_space_for(cfg, space, "runs/pre")


def test_head_options_may_be_tuned_with_from(tiny_files: tuple[Path, Path], tmp_path: Path) -> None:
    cfg = load_config(tiny_files[0])
    head = tmp_path / "head.yaml"
    head.write_text("model.head.hidden: {type: int, low: 8, high: 32}\n")
    assert list(load_space_for(cfg, head, "runs/pre")) == ["model.head.hidden"]
    edges = tmp_path / "edges.yaml"
    edges.write_text("model.edge_padding: {type: categorical, choices: [zeros, replicate]}\n")
    with pytest.raises(ClimatuneError, match="'model.edge_padding' has no effect with --from"):
        load_space_for(cfg, edges, "runs/pre")


@pytest.mark.parametrize("example", ["a1b", "synthetic"])
def test_example_spaces_fit_their_fine_tuning_configs(example: str) -> None:
    root = Path(climatune.__file__).parent / "examples" / example
    params = load_space_for(load_config(root / "finetune.yaml"), root / "tune_space.yaml", "pre")
    assert "optim.lr" in params and "finetune.strategy" in params
