"""Figures of a study, including the ones drawn before there is much to show."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from climatune.tuning.plots import plot_history, plot_importance, save_figure


def _study(values: list[float | None]) -> optuna.Study:
    """In memory: one trial per value, complete (a number) or pruned after one step (None)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for i, value in enumerate(values):
        trial = study.ask(
            {"optim.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
        )
        trial.report(float(i), 0)
        if value is None:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, value)
    return study


def _texts(fig) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_figures_say_why_they_are_empty(tmp_path: Path) -> None:
    assert "no finished trial yet" in _texts(plot_history(_study([])))
    assert "at least 2 complete trials (1 so far)" in _texts(plot_importance(_study([1.0, None])))
    path = save_figure(plot_importance(_study([])), tmp_path / "tune_importance.png")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_history_marks_the_best_so_far_and_pruned_trials() -> None:
    fig = plot_history(_study([3.0, None, 1.0, 2.0]), "mean validation rmse")
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["best so far"].get_ydata()) == [3.0, 1.0, 1.0]
    assert list(lines["pruned (last fold mean)"].get_xdata()) == [1]
    assert ax.get_ylabel() == "mean validation rmse"


@pytest.mark.parametrize("n", [2, 5])
def test_importance_is_drawn_from_two_complete_trials(n: int) -> None:
    fig = plot_importance(_study([float(i % 3) for i in range(n)]))
    ax = fig.axes[0]
    assert not ax.texts and [t.get_text() for t in ax.get_yticklabels()] == ["optim.lr"]
