"""Unit conversion: exact, lazy, reported; incompatible, unknown or missing units refused."""

from __future__ import annotations

import logging

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from climatune.data.units import convert, levels_in_hpa, to_units
from climatune.errors import ClimatuneError


def _field(values, units: str, dtype: str = "f4") -> xr.DataArray:
    data = da.from_array(np.asarray(values, dtype=dtype), chunks=1)
    return xr.DataArray(
        data, dims="x", coords={"x": np.arange(len(values))}, attrs={"units": units}
    )


def test_celsius_to_kelvin_is_exact_and_lazy():
    celsius = [20.0, -1.5, 0.1]
    ds = xr.Dataset({"sst": _field(celsius, "degC"), "pr": _field([1.0, 2.0, 3.0], "kg m-2 s-1")})
    ds.sst.attrs["long_name"] = "sea surface temperature"
    ds.sst.encoding["source"] = "sst.nc"
    out, changes = to_units(ds, {"sst": "K", "pr": "kg m-2 s-1"}, "the model")
    assert changes == ["sst: degC -> K"]
    assert isinstance(out.sst.data, da.Array)  # still a Dask graph: nothing was loaded
    assert out.sst.dtype == np.float64 and out.pr.dtype == np.float32
    # float64 of the stored float32 values, plus exactly 273.15
    expected = np.asarray(celsius, dtype="f4").astype("f8") + 273.15
    np.testing.assert_array_equal(out.sst.values, expected)
    assert out.sst.attrs == {"units": "K", "long_name": "sea surface temperature"}
    assert out.sst.encoding["source"] == "sst.nc" and out.x.values.tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    ("have", "want", "values", "expected"),
    [
        ("Pa", "hPa", [50000.0, 85000.0], [500.0, 850.0]),
        ("K", "degC", [273.15, 300.0], [0.0, 26.85]),
        ("kg m-2 s-1", "kg m-2 d-1", [1.0, 2.0], [86400.0, 172800.0]),
        ("m2 s-2", "m**2/s**2", [9.81, 1.0], [9.81, 1.0]),
    ],
)
def test_compatible_units_convert(have, want, values, expected):
    out, changes = to_units(xr.Dataset({"v": _field(values, have, "f8")}), {"v": want}, "x")
    assert changes == [f"v: {have} -> {want}"] and out.v.attrs["units"] == want
    np.testing.assert_allclose(out.v.values, expected, rtol=1e-12, atol=1e-12)


def test_convert_back_restores_the_values():
    kelvin = convert(_field([293.15, 250.0], "K", "f8"), "degC")
    np.testing.assert_allclose(kelvin.values, [20.0, -23.15], rtol=0, atol=1e-12)
    assert kelvin.attrs["units"] == "degC"


def test_same_units_and_unknown_variables_are_left_alone():
    ds = xr.Dataset({"tas": _field([1.0], "K")})
    out, changes = to_units(ds, {"tas": "K", "zos": "m", "pr": ""}, "the model")
    assert changes == [] and out.tas.dtype == np.float32


@pytest.mark.parametrize(
    ("have", "want", "message"),
    [
        (
            "m",
            "K",
            "variable 'tas' is in 'm', which cannot be converted to the 'K' of the model; "
            "give the data in 'K'",
        ),
        # water-equivalent depth rates need a density, which the CF registry does not assume
        ("mm day-1", "kg m-2 s-1", "'mm day-1', which cannot be converted to the 'kg m-2 s-1'"),
        (
            "furlongs per bogon",
            "K",
            "'tas' has units 'furlongs per bogon', which are not understood",
        ),
        ("", "K", "variable 'tas' has no units attribute but the model uses 'K'"),
    ],
)
def test_incompatible_unknown_or_missing_units_are_refused(have, want, message):
    ds = xr.Dataset({"tas": _field([1.0], have)})
    with pytest.raises(ClimatuneError, match=message.replace("(", r"\(").replace(")", r"\)")):
        to_units(ds, {"tas": want}, "the model")


@pytest.mark.parametrize("text", ["~", "{", "(K", "K*(", "1/0", "\x00", "{}", "null"])
def test_malformed_units_are_not_understood_not_a_crash(text):
    """pint's parser raises AssertionError, TokenError or ZeroDivisionError on these."""
    ds = xr.Dataset({"tas": _field([1.0], text)})
    with pytest.raises(ClimatuneError, match="which are not understood"):
        to_units(ds, {"tas": "K"}, "the model")
    level = xr.Dataset(coords={"level": ("level", [1.0], {"units": text})})
    assert levels_in_hpa(level) is level


def test_pressure_levels_are_converted_to_hpa(caplog):
    ds = xr.Dataset(
        {"z": (("level",), [1.0, 2.0])},
        coords={"level": ("level", [50000.0, 85000.0], {"units": "Pa", "positive": "down"})},
    )
    with caplog.at_level(logging.WARNING, logger="climatune"):
        out = levels_in_hpa(ds)
    assert out.level.values.tolist() == [500.0, 850.0]
    assert out.level.attrs == {"units": "hPa", "positive": "down"}
    assert "level: Pa -> hPa" in caplog.text


@pytest.mark.parametrize("units", ["hPa", "m", "1", "", "sigma_level"])
def test_other_levels_are_left_alone(units, caplog):
    ds = xr.Dataset(coords={"level": ("level", [1.0, 2.0], {"units": units} if units else {})})
    with caplog.at_level(logging.WARNING, logger="climatune"):
        assert levels_in_hpa(ds) is ds
    assert "converted" not in caplog.text
