"""Run a set of short training runs from one start, one lever changed each, and tabulate their validation.

The command; its code is ``pipeline.ablations``.
"""

import sys

from pipeline.ablations import main

if __name__ == "__main__":
    sys.exit(main())
