"""``python -m particlegraph``: the same command line as the ``particlegraph`` script."""

from __future__ import annotations

from particlegraph.cli.main import main

if __name__ == "__main__":
    main()
