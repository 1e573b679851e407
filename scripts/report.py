"""The README's results table, regenerated from the checkpoints of a pipeline run in one command.

The command; its code is ``pipeline.report``.
"""

import sys

from pipeline.report import main

if __name__ == "__main__":
    sys.exit(main())
