"""``python -m oddkit.cli``: the same as the ``oddkit`` command."""

from oddkit.cli import main

main()
