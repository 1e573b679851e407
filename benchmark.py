"""Time several SR models side by side in one process (interleaved rounds, after warm-up; median and spread).

The command; its code is ``pipeline.benchmark``.
"""

import sys

from pipeline.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
