"""Pareto plot of quality against speed: PSNR vs median runtime, marker area proportional to parameters.

The command; its code is ``pipeline.pareto``.
"""

import sys

from pipeline.pareto import main

if __name__ == "__main__":
    sys.exit(main())
