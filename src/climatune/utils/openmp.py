"""OpenMP waiting policy for training processes."""

from __future__ import annotations

import os

__all__ = ["prefer_passive_openmp"]


def prefer_passive_openmp() -> None:
    """Ask OpenMP threads to sleep rather than spin while they wait, unless the user chose.

    Spinning threads make PyTorch 10-50x slower on a busy or small CPU (two processes with
    two threads each on two cores, as in CPU DDP); passive waiting costs little on an idle
    machine. The OpenMP runtime reads ``OMP_WAIT_POLICY`` once, when torch loads, so this
    takes effect in the current process only if called before ``import torch``, and in
    every process started after it (DDP workers). A value the user set is kept.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
