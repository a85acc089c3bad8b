"""``python -m mtotrust`` runs the ``mtotrust`` command."""

import sys

from mtotrust.cli import main

sys.exit(main())
