"""``python -m runtime.cli``: the ``symgraph`` command."""

import sys

from runtime.cli import main

sys.exit(main())
