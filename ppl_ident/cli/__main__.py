"""``python -m ppl_ident.cli`` runs the ``ppl-ident`` command line."""

import sys

from ppl_ident.cli import main

# Guarded: Dask workers started with "spawn" re-import the parent's main module.
if __name__ == "__main__":
    sys.exit(main())
