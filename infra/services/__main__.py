"""``python -m infra.services up|down|status``."""

import sys

from infra.services import main

sys.exit(main())
