"""``python -m hart``: the ``hart`` command line without the console script on PATH."""

import sys

from hart.cli import main

if __name__ == "__main__":
    sys.exit(main())
