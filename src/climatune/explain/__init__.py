"""Explain what a model learned: attributions, the component interaction matrix, faithfulness.

>>> from climatune.explain import explain  # doctest: +SKIP
>>> expl = explain(load_model("runs/x"), view, method="ig", target="tas@lat=30:50,lon=235:260")  # doctest: +SKIP
>>> expl.interactions.ranking(expl.target.label)  # doctest: +SKIP
['ocean', 'atmosphere', 'ice']

Heavy modules (Captum, SHAP, matplotlib) are imported when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["METHODS", "Explanation", "explain", "explain_command", "write_explanation"]

if TYPE_CHECKING:
    from climatune.explain.attribution import METHODS
    from climatune.explain.run import Explanation, explain, explain_command, write_explanation


def __getattr__(name: str) -> Any:
    if name == "METHODS":
        from climatune.explain import attribution

        return attribution.METHODS
    if name in __all__:
        from climatune.explain import run

        return getattr(run, name)
    raise AttributeError(f"module 'climatune.explain' has no attribute {name!r}")
