"""A speed/quality frontier: the pipeline's merged network pruned to other budgets, each trained on its own.

The command; its code is ``pipeline.frontier``.
"""

import sys

from pipeline.frontier import main

if __name__ == "__main__":
    sys.exit(main())
