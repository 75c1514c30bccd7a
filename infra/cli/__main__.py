"""``python -m infra.cli``: the ``prism`` command."""

import sys

from infra.cli import main

sys.exit(main())
