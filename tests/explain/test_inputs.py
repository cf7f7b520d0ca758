"""The explained inputs: the climatology baseline, normalised like the inputs."""

from __future__ import annotations

import numpy as np

from climatune.data.samples import fit_normalizer
from climatune.data.view import build_view
from climatune.explain.inputs import load_inputs
from climatune.testing import tiny_archive, tiny_config


def test_the_climatology_baseline_of_an_anomaly_model_is_zero_anomaly(tmp_path):
    cfg = tiny_config(tiny_archive(tmp_path / "tiny.nc"))
    view = build_view(cfg.data, cfg.task)
    norm = fit_normalizer(view, "anomaly")
    inputs = load_inputs(view, "test", 4, norm)
    assert inputs.baseline.shape == (4, 2, 1, 8, 16)
    np.testing.assert_allclose(inputs.baseline.numpy(), 0.0, atol=1e-5)
    glob = load_inputs(view, "test", 4, fit_normalizer(view))  # raw values: the cycle shows
    assert float(glob.baseline.abs().max()) > 0.5
