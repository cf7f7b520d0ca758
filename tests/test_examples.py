"""Every example config and every README command block runs, on a tiny budget.

The commands are read from the documentation itself, so that it cannot rot: the
``climatune ...`` lines in the comments of each YAML file under ``examples/`` (each file
says how it is run), and the lines of each ``bash`` block of the README. They run in the
order a user would type them, in a scratch folder where ``examples/`` is at hand, with one
epoch of two batches, a narrow network, one trial and fewer folds, fractions or leads.
Lines that need hardware this machine lacks (GPUs, nodes, torchrun, SLURM) are parsed and
their ``--set`` keys validated, not run; ``make X`` runs the ``climatune`` lines of that
Makefile target, except ``make demo`` (``tests/test_demo.py``) and ``make test`` (this
suite).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

import climatune
from climatune.cli import build_parser, main
from climatune.config import load_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
README = ROOT / "README.md"
MAKEFILE = ROOT / "Makefile"

#: Flags whose value shrinks to a tiny budget wherever a documented command gives them.
SMALLER = {"--trials": "1", "--folds": "2", "--fractions": "0.5,1", "--leads": "1,3"}
#: Subcommands that train a network (``evaluate`` trains the scratch comparison).
TRAINS = ("pretrain", "finetune", "curve", "leads", "tune", "evaluate", "explain")
BUDGET = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.progress_bar=false"]
#: ``--set`` keys that ask for hardware: such lines are parsed, not run.
HARDWARE = ("trainer.accelerator", "trainer.devices", "trainer.num_nodes", "trainer.strategy")
#: What each subcommand's work is ordered by: the data, then pre-training, then the rest.
ORDER = {"data": 0, "pretrain": 1, "finetune": 2}


def command_lines(text: str, *, comments: bool = False) -> list[list[str]]:
    """The command lines of ``text`` (of its ``#`` comments with ``comments``), with
    backslash continuations joined and trailing comments dropped, as argv lists."""
    lines = text.splitlines()
    if comments:
        lines = [line.lstrip()[1:] for line in lines if line.lstrip().startswith("#")]
    out, current = [], ""
    for line in lines:
        if comments and not current and not line.strip().startswith("climatune "):
            continue  # prose
        current = f"{current} {line.strip()}".strip()
        if current.endswith("\\"):
            current = current[:-1]
            continue
        argv = shlex.split(current, comments=True) if current else []
        current = ""
        if argv and (not comments or argv[0] == "climatune"):
            out.append(argv)
    return out


def climatune_argv(argv: list[str]) -> list[str] | None:
    """The arguments of ``climatune`` in a line (``torchrun ... -m climatune ...``,
    ``srun ... climatune ...``), or None when the line does not run climatune."""
    if "climatune" not in argv:
        return None
    return argv[argv.index("climatune") + 1 :]


def _sets(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--set"]


def runs_here(line: list[str]) -> bool:
    """A plain ``climatune`` line that asks for no special hardware."""
    args = climatune_argv(line)
    return line[0] == "climatune" and not any(
        s.split("=", 1)[0] in HARDWARE for s in _sets(args or [])
    )


def tiny(argv: list[str]) -> list[str]:
    """``argv`` on a tiny budget: smaller flag values, one epoch of two batches, and a
    narrow network where pre-training builds one (everything downstream inherits it)."""
    out = [SMALLER.get(argv[i - 1], a) if i else a for i, a in enumerate(argv)]
    if out[0] == "explain" and "--samples" not in out:
        out += ["--samples", "4"]
    if out[0] in TRAINS:
        out += [x for s in BUDGET for x in ("--set", s)]
    if out[0] == "pretrain" and "--config" in out:
        model = load_config(out[out.index("--config") + 1], _sets(out)).model.model_dump()
        out += ["--set", "model.width=8"] if "width" in model else []
    return out


def run_documented(argv: list[str], capsys) -> None:
    """Run one documented command in-process and check that it wrote its outputs."""
    code = main(tiny(argv))
    err = capsys.readouterr().err
    assert code == 0, f"'climatune {shlex.join(argv)}' failed ({code}): {err[-2000:]}"
    for flag in ("--out", "--output"):
        if flag in argv:
            made = Path(argv[argv.index(flag) + 1])
            assert made.exists() and (made.is_file() or any(made.iterdir())), made


def make_target(target: str) -> list[list[str]]:
    """The ``climatune`` argument lists of a Makefile target's recipe, in order."""
    found = re.search(rf"^{target}:.*\n((?:\t.*\n?)+)", MAKEFILE.read_text(), re.M)
    assert found, f"the README runs 'make {target}', which the Makefile lacks"
    recipe = found.group(1).replace("\t", "").replace("$(VENV)/bin/climatune", "climatune")
    return [a for a in map(climatune_argv, command_lines(recipe)) if a is not None]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A scratch folder to run documented commands in, with ``examples/`` at hand."""
    (tmp_path / "examples").symlink_to(EXAMPLES, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _example_folders() -> list[Path]:
    return sorted({p.parent for p in EXAMPLES.rglob("*.yaml")})


def test_documentation_commands_are_read():
    text = "a\n# climatune data synth --out x \\\n#     --years 3   # note\n# plain words\n"
    assert command_lines(text, comments=True) == [
        ["climatune", "data", "synth", "--out", "x", "--years", "3"]
    ]
    assert tiny(["tune", "--trials", "12", "--folds", "3"])[:5] == [
        "tune",
        "--trials",
        "1",
        "--folds",
        "2",
    ]
    assert climatune_argv(["torchrun", "-m", "climatune", "pretrain"]) == ["pretrain"]
    assert not runs_here(["climatune", "pretrain", "--set", "trainer.devices=4"])
    assert len(_example_folders()) >= 2


@pytest.mark.slow
@pytest.mark.parametrize("folder", _example_folders(), ids=lambda p: p.name)
def test_every_example_runs_as_its_comments_say(folder, workspace, capsys):
    """Each YAML names the commands that use it; they all run, data first."""
    commands: list[list[str]] = []
    for path in sorted(folder.glob("*.yaml")):
        documented = command_lines(path.read_text(), comments=True)
        assert documented, f"{path.relative_to(ROOT)} documents no 'climatune ...' command"
        assert any(str(path.relative_to(ROOT)) in c for c in documented), path.name
        commands += [c for c in documented if c not in commands]
    commands.sort(key=lambda c: ORDER.get(c[1], 3))
    for argv in commands:
        if runs_here(argv):
            run_documented(argv[1:], capsys)
        else:  # hardware this machine lacks (a GPU): the flags and keys must still be right
            args = build_parser().parse_args(argv[1:])
            load_config(getattr(args, "config", None), _sets(argv[1:]))


@pytest.mark.slow
def test_every_readme_command_block_runs(workspace, capsys):
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
    assert blocks
    parser = build_parser()
    ran = 0
    for block in blocks:
        for line in command_lines(block):
            if line[0] == "make":
                for args in [] if line[1] in ("demo", "test") else make_target(line[1]):
                    run_documented(args, capsys)  # demo: test_demo.py; test: this suite
                continue
            args = climatune_argv(line)
            assert args is not None, f"README line runs no climatune: {shlex.join(line)}"
            if runs_here(line):
                run_documented(args, capsys)
                ran += 1
            else:  # hardware this machine lacks: the flags and keys must still be right
                parser.parse_args(args)
                load_config(None, _sets(args))
    assert ran >= 10


# --------------------------------------------------------------------------- the example configs

PACKAGED = Path(climatune.__file__).parent / "examples"


def test_the_repositorys_examples_are_the_packaged_ones() -> None:
    """``examples/`` is a link to ``src/climatune/examples``: one copy, shipped in the wheel."""
    assert EXAMPLES.resolve() == PACKAGED.resolve()
    assert {p.name for p in PACKAGED.iterdir() if p.is_dir()} >= {"a1b", "synthetic"}


def test_synthetic_pretraining_never_trains_on_the_fine_tuning_test_years() -> None:
    pre = load_config(EXAMPLES / "synthetic" / "pretrain.yaml")
    tune = load_config(EXAMPLES / "synthetic" / "finetune.yaml")
    assert pre.data.split is not None and tune.data.split is not None
    assert tune.data.split.test is not None and pre.data.split.test == tune.data.split.test
    first_test = tune.data.split.test[0]
    for block in (pre.data.split.train, pre.data.split.val, tune.data.split.train):
        blocks = block if isinstance(block, list) else [block]
        assert all(b[1] < first_test for b in blocks)
    # the same inputs and history, so the whole network transfers
    assert (pre.data.variables, pre.task.history, pre.task.lead) == (
        tune.data.variables,
        tune.task.history,
        tune.task.lead,
    )
