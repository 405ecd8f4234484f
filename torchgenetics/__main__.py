"""``python -m torchgenetics``: the ``torchgen`` command line.

This is what ``torchrun`` starts on every rank::

    torchrun --nproc-per-node 4 -m torchgenetics reml --bfile data/cohort --pheno y.txt --out h2 --distributed
"""

import sys

from torchgenetics.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
