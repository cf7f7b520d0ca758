"""``python -m climatune``."""

import sys

from climatune.cli import main

sys.exit(main())
