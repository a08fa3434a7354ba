"""``python -m torchvae``: the same command line as the ``torchvae`` script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
