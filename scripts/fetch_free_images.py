"""Build a structured-content validation set and a line-art training folder from free-licensed images.

The command; its code is ``training.free_images``.
"""

import sys

from training.free_images import main

if __name__ == "__main__":
    sys.exit(main())
