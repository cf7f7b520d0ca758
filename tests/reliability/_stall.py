"""``python -m tests.reliability._stall ARGS``: the climatune CLI, frozen before one rename.

Fault injection for the crash tests: when an atomic write of the file named by
``$CLIMATUNE_STALL_ON`` is about to be renamed from its ``.NAME.tmp-PID`` into place, touch
``$CLIMATUNE_STALL_READY`` and sleep, so a test can SIGKILL the process at exactly the
moment the output exists only under its temporary name. Everything else is the real CLI.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

_replace = os.replace


def _stalling_replace(src, dst, *args, **kwargs):
    if ".tmp-" in Path(src).name and Path(dst).name == os.environ.get("CLIMATUNE_STALL_ON"):
        Path(os.environ["CLIMATUNE_STALL_READY"]).touch()
        time.sleep(600)
    return _replace(src, dst, *args, **kwargs)


if __name__ == "__main__":
    os.replace = _stalling_replace
    from climatune.cli import main

    sys.exit(main())
