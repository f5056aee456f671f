"""The ``brokerpool`` command line: one module per command, wired together by :mod:`.main`."""
