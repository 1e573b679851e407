"""Fine-tune a checkpoint of any PRFDN stage (RFDN, branch, prfdn, prfdn_helpers) on folders of HR images.

The command; its code is ``training.run``.
"""

import sys

from training.run import cli

if __name__ == "__main__":
    sys.exit(cli())
