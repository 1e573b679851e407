"""PSNR per validation group of checkpoints, plain and as x8 self-ensembles.

The command; its code is ``pipeline.groups``.
"""

import sys

from pipeline.groups import main

if __name__ == "__main__":
    sys.exit(main())
