"""Train an ablation run to its end, then finish a pipeline run from its weights: one resumable command.

The command; its code is ``pipeline.from_ablation``.
"""

import sys

from pipeline.from_ablation import main

if __name__ == "__main__":
    sys.exit(main())
