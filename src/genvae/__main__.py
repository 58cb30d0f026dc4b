"""``python -m genvae`` is the ``genvae`` command."""

import sys

from genvae.cli import main

sys.exit(main())
