"""``python -m broker``: the ``brokerpool`` command line (see :mod:`broker.cli.main`)."""

from broker.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
