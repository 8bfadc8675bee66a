"""``python -m ppl_ident.cli`` runs the ``ppl-ident`` command line."""

import sys

from ppl_ident.cli import main

sys.exit(main())
