"""Training speed of the fast paths, side by side: seconds per training iteration (forward + backward + Adam) of a

The command; its code is ``training.bench``.
"""

import sys

from training.bench import main

if __name__ == "__main__":
    sys.exit(main())
