"""The time step in words, as the ``leads`` figure labels its axis."""

from __future__ import annotations

import matplotlib
import pytest
import xarray as xr

from climatune.data.climatology import step_unit
from climatune.workflows.leads import plot_leads

matplotlib.use("Agg")


@pytest.mark.parametrize("calendar", ["standard", "noleap", "360_day"])
@pytest.mark.parametrize(
    ("freq", "periods", "unit"),
    [("MS", 30, "months"), ("YS", 5, "years"), ("D", 800, "days"), ("QS", 12, "time steps")],
)
def test_the_step_is_named_in_every_calendar(calendar, freq, periods, unit):
    # 30 months starting in July: no calendar year is full but 2001's
    time = xr.date_range(
        "2000-07-01", periods=periods, freq=freq, calendar=calendar, use_cftime=True
    )
    assert step_unit(xr.DataArray(time, dims="time")) == unit


def test_a_single_step_has_no_unit():
    time = xr.date_range("2000-01-01", periods=1, freq="MS", use_cftime=True)
    assert step_unit(xr.DataArray(time, dims="time")) == "time steps"


def test_the_leads_figure_labels_its_axis_with_the_unit(tmp_path, monkeypatch):
    labels = []
    monkeypatch.setattr(
        matplotlib.axes.Axes, "set_xlabel", lambda ax, text, *a, **k: labels.append(text)
    )
    rows = [
        {"lead": lead, "model": "finetuned", "variable": "nino34", "metric": m, "value": 0.5}
        for lead in (1, 3)
        for m in ("corr_anom", "skill")
    ]
    plot_leads(rows, tmp_path / "leads.png", unit="months")
    assert labels == ["lead (months)", "lead (months)"]
    assert (tmp_path / "leads.png").read_bytes()[:4] == b"\x89PNG"
