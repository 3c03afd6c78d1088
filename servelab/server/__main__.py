"""`python -m servelab.server ...` is `servelab serve ...`."""

import sys

from servelab.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
