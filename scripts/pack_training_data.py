"""Re-encode training folders as lossless WebP, small enough to copy to a GPU server.

The command; its code is ``training.pack``.
"""

import sys

from training.pack import main

if __name__ == "__main__":
    sys.exit(main())
