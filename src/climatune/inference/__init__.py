"""Inference: save, load, validate and run a model artifact.

Examples
--------
>>> from climatune.inference import load_model
>>> load_model("no/such/run")
Traceback (most recent call last):
...
climatune.errors.ClimatuneError: model no/such/run does not exist; give a run directory or its model/ directory
"""

from climatune.inference.artifact import (
    SCHEMA_VERSION,
    TASK_KEYS,
    ArtifactMeta,
    model_paths,
    read_artifact,
    resolve_device,
    resolve_model_dir,
    save_artifact,
    variable_records,
)
from climatune.inference.model import LoadedModel, load_model
from climatune.inference.netcdf import predict_file
from climatune.inference.predict import (
    ABSENT_INPUTS,
    check_task,
    input_names,
    margined_static,
    model_units,
    model_view,
    predict_distribution,
    predict_view,
    static_for,
)

__all__ = [
    "ABSENT_INPUTS",
    "SCHEMA_VERSION",
    "TASK_KEYS",
    "ArtifactMeta",
    "LoadedModel",
    "check_task",
    "input_names",
    "model_units",
    "load_model",
    "model_paths",
    "model_view",
    "predict_file",
    "predict_distribution",
    "predict_view",
    "read_artifact",
    "resolve_device",
    "resolve_model_dir",
    "save_artifact",
    "static_for",
    "margined_static",
    "variable_records",
]
