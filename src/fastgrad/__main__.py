"""``python -m fastgrad``: the same command line as ``fastgrad``."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
