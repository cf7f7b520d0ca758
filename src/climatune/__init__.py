"""ClimaTune: pre-train deep networks on climate archives and fine-tune them for your problem."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_model", "ClimatuneError"]

from climatune.errors import ClimatuneError

if TYPE_CHECKING:
    from climatune.inference import LoadedModel


def load_model(path: Any) -> LoadedModel:
    """Load a model artifact (``RUN/`` or ``RUN/model/``) without unpickling anything."""
    from climatune.inference import load_model as _load

    return _load(path)
