"""The packaged app's entry script (PyInstaller needs a file, not a module name)."""

import sys

from app.main import main

if __name__ == "__main__":
    sys.exit(main())
