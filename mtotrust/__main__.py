"""``python -m mtotrust`` runs the ``mtotrust`` command (the console script's :func:`mtotrust.cli.main`)."""

import sys

from mtotrust.cli import main

if __name__ == "__main__":
    sys.exit(main())
