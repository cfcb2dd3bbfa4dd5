"""``python -m frictionwatch`` is the ``frictionwatch`` command."""

import sys

from frictionwatch.cli import main

sys.exit(main())
