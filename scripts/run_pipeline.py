"""The whole PRFDN transform from the official RFDN, one command, one config file.

The command; its code is ``pipeline.run``.
"""

import sys

from pipeline.run import main

if __name__ == "__main__":
    sys.exit(main())
