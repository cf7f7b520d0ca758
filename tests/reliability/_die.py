"""``python -m tests.reliability._die ARGS``: the climatune CLI, signalled in mid-training.

Fault injection for the resume tests: once ``checkpoints/last.ckpt`` holds epoch
``$CLIMATUNE_DIE_AFTER_EPOCH`` (0-based), the process sends itself
``$CLIMATUNE_DIE_SIGNAL`` (``KILL``, ``TERM`` or ``INT``) after the first batch of the next
epoch, as a scheduler, the OOM killer or Ctrl-C would. Everything else is the real CLI.
"""

from __future__ import annotations

import os
import signal
import sys

from lightning.pytorch.callbacks import ModelCheckpoint

_batch_end = ModelCheckpoint.on_train_batch_end


def _signalling_batch_end(self, trainer, *args, **kwargs):
    _batch_end(self, trainer, *args, **kwargs)
    if trainer.current_epoch == int(os.environ["CLIMATUNE_DIE_AFTER_EPOCH"]) + 1:
        os.kill(os.getpid(), getattr(signal, "SIG" + os.environ["CLIMATUNE_DIE_SIGNAL"]))


if __name__ == "__main__":
    ModelCheckpoint.on_train_batch_end = _signalling_batch_end
    from climatune.cli import main

    sys.exit(main())
