"""Importing climatune leaves the user's global state alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_SCRIPT = """
import importlib, json, os, pkgutil, sys
import lightning.pytorch, matplotlib, peft, shap  # these set variables of their own
matplotlib.use("svg")  # the user's own choice, not the default
before = {"backend": matplotlib.get_backend(), "env": dict(os.environ)}
import climatune
names = [m.name for m in pkgutil.walk_packages(climatune.__path__, "climatune.")]
for name in names:
    if name != "climatune.__main__":  # runs the command line
        importlib.import_module(name)
after = {"backend": matplotlib.get_backend(), "env": dict(os.environ)}
print(json.dumps({"before": before, "after": after, "modules": len(names)}))
"""


def test_importing_every_module_changes_no_global_state():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "MPLBACKEND")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["modules"] > 50
    assert seen["after"]["backend"] == seen["before"]["backend"] == "svg"
    assert seen["after"]["env"] == seen["before"]["env"]
