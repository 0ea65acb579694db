"""``python -m oddkit``: the same command line as the ``oddkit`` script."""
from oddkit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
