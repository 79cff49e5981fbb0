"""``python -m tunegate ...`` is the ``tunegate`` command (and what ``accelerate launch -m tunegate`` runs)."""

import sys

from tunegate.cli import main

sys.exit(main())
