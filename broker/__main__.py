"""``python -m broker``: the ``brokerpool`` command line (see :mod:`broker.cli`)."""

from broker.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
