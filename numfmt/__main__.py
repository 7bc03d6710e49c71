"""``python -m numfmt``: the same command line as the ``numfmt`` script."""

import sys

from numfmt.cli import main

sys.exit(main())
