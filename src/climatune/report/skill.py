"""Skill of each network against the reference forecasts, and whether it is useful at all.

Skill against a reference is ``1 - MSE_model / MSE_reference`` (DESIGN.md), computed from
the RMSEs of one variable at one lead, scored on the same cells and times (``evaluate``
scores every model on the cells all of them predict). The functions take the RMSE of
each model at one lead, so that a table over leads calls them once per lead.

Examples
--------
>>> skills = network_skills({"finetuned": 0.6, "climatology": 0.5, "damped_persistence": 0.7})
>>> round(skills["finetuned"]["climatology"], 2), round(skills["finetuned"]["damped_persistence"], 4)
(-0.44, 0.2653)
>>> usefulness(skills["finetuned"])
'worse than climatology: not useful at this lead'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "REFERENCES",
    "NOT_USEFUL",
    "skill_against",
    "network_skills",
    "usefulness",
    "skill_lines",
]

# The references of DESIGN.md: the climatology, and the standard reference forecast.
REFERENCES = ("climatology", "damped_persistence")
# The plain verdict for a network that does not beat the climatology.
NOT_USEFUL = "worse than climatology: not useful at this lead"
_NETWORKS = ("finetuned", "pretrained", "scratch")


def skill_against(rmse_model: float, rmse_reference: float) -> float:
    """``1 - MSE_model / MSE_reference`` from two RMSEs on the same cells and times.

    NaN when either is not finite or the reference is not positive (no skill can be
    stated against a perfect or missing reference).
    """
    if not (math.isfinite(rmse_model) and math.isfinite(rmse_reference)) or rmse_reference <= 0:
        return math.nan
    return 1.0 - (rmse_model / rmse_reference) ** 2


def network_skills(
    rmse: Mapping[str, float],
    networks: Iterable[str] = _NETWORKS,
    references: Sequence[str] = REFERENCES,
) -> dict[str, dict[str, float]]:
    """Skill of each network in ``rmse`` against each reference in ``rmse``, at one lead.

    Parameters
    ----------
    rmse : model name -> RMSE of one variable at one lead (networks and baselines).
    networks : the names that are networks, in the order they are returned.
    references : the baselines skill is stated against; those missing from ``rmse`` are
        left out.

    Returns
    -------
    dict
        network -> {reference -> skill}; networks without an RMSE are left out.
    """
    refs = [r for r in references if r in rmse]
    return {
        net: {ref: skill_against(rmse[net], rmse[ref]) for ref in refs}
        for net in networks
        if net in rmse
    }


def usefulness(skills: Mapping[str, float]) -> str | None:
    """The plain verdict for a network whose skill against the climatology is not
    positive (:data:`NOT_USEFUL`, or "no better than climatology: ..." at exactly zero);
    ``None`` when it beats the climatology or no skill against it is known."""
    value = skills.get("climatology", math.nan)
    if not math.isfinite(value) or value > 0:
        return None
    return NOT_USEFUL if value < 0 else NOT_USEFUL.replace("worse than", "no better than", 1)


def skill_lines(
    rmse: Mapping[str, float],
    variable: str,
    lead: int | None = None,
    networks: Iterable[str] = _NETWORKS,
) -> list[str]:
    """Printable lines: a header, then one line per network with its skill against each
    reference and, when it does not beat the climatology, the plain verdict.

    Empty when no network or no reference was scored.

    Examples
    --------
    >>> for line in skill_lines({"scratch": 1.2, "climatology": 1.0}, "tas", lead=1):
    ...     print(line)
    tas skill at lead 1 (1 - MSE/MSE_reference):
      scratch: -0.44 against climatology — worse than climatology: not useful at this lead
    """
    skills = network_skills(rmse, networks)
    if not skills or not any(skills.values()):
        return []
    at = f" at lead {lead}" if lead is not None else ""
    lines = [f"{variable} skill{at} (1 - MSE/MSE_reference):"]
    for net, values in skills.items():
        parts = ", ".join(f"{_fmt(v)} against {ref.replace('_', ' ')}" for ref, v in values.items())
        plain = usefulness(values)
        lines.append(f"  {net}: {parts}" + (f" — {plain}" if plain else ""))
    return lines


def _fmt(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:.2g}"
