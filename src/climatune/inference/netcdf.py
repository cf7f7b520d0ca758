"""``climatune predict``: apply a model to a file and write CF-compliant NetCDF."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np

from climatune import __version__
from climatune.data.io import open_dataset, source_paths
from climatune.errors import ClimatuneError
from climatune.inference.artifact import model_paths
from climatune.inference.model import load_model
from climatune.utils.atomic import atomic_path, check_new_path, check_not_input

__all__ = ["predict_file"]


def predict_file(
    model_path: str | Path,
    input_path: str | Path,
    output: str | Path,
    *,
    device: str = "cpu",
    units: Literal["input", "model"] = "input",
) -> Path:
    """``climatune predict``: read ``input_path``, predict on ``device``, write CF NetCDF.

    The predictions are in the input's units, or the model's with ``units="model"``
    (:meth:`~climatune.inference.model.LoadedModel.predict`).
    """
    output = Path(output)
    if output.exists() and output.is_dir():
        raise ClimatuneError(f"--output {output} is a directory; give a .nc file path")
    check_not_input(output, [*model_paths(model_path), *source_paths(input_path)], flag="--output")
    check_new_path(output, flag="--output")
    model = load_model(model_path, device)
    ds = open_dataset(input_path)
    pred = model.predict(ds, units=units)
    calendar = ds.time.encoding.get("calendar") or pred.time.dt.calendar
    pred.attrs = {
        "Conventions": "CF-1.8",
        "title": f"ClimaTune {model.meta.data['task']['kind']} predictions",
        "source": f"climatune {__version__}, model {model.model_dir.resolve()}",
        "history": f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}: climatune predict "
        f"{model_path} --input {input_path} --output {output}",
    }
    for coord, attrs in (
        ("lat", {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}),
        ("lon", {"units": "degrees_east", "standard_name": "longitude", "axis": "X"}),
    ):
        if coord in pred.coords:
            pred[coord].attrs.update(attrs)
    pred.time.attrs.update({"standard_name": "time", "axis": "T"})
    encoding = {"time": {"units": "days since 1850-01-01", "calendar": calendar}}
    encoding.update(
        {str(v): {"_FillValue": np.float32(np.nan), "dtype": "float32"} for v in pred.data_vars}
    )
    with atomic_path(output, overwrite=False) as tmp:
        pred.to_netcdf(tmp, encoding=encoding, engine="netcdf4")
    return output
