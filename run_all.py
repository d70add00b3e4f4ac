"""Run the streaming benchmark. ``python run_all.py --help`` explains every option."""

import sys

from bench.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
