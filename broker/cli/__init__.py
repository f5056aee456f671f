"""The ``brokerpool`` command line: one module per command (see :mod:`.main`)."""
