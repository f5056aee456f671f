"""The ``brokerpool`` command line (also ``python -m broker``).

Subcommands::

    brokerpool demo [--url URL]                      the main job: a short guided round trip
    brokerpool check URL...                          connect (with failover), print server facts
    brokerpool publish URL -k KEY [-q QUEUE] BODY|-  publish one message, confirmed
    brokerpool consume URL QUEUE                     print messages from a queue
    brokerpool bench [URL]                           a quick throughput run

Exit codes: 0 success, 1 a broker or configuration error (one line on
stderr, no traceback unless ``--verbose``), 2 a usage error, 130 on Ctrl-C.
Passwords are masked in everything printed. Only this module configures
logging; the library itself never prints.

This module only wires the parser, logging and exit codes; each command
lives in a module of its own (:mod:`.demo`, :mod:`.check`, :mod:`.publish`,
:mod:`.consume`, :mod:`.bench`), sharing :mod:`.support` (the timeout
option, a bounded connect, server facts), :mod:`.arguments` (the checked
types of numeric options) and :mod:`.output` (what is printed). No command
module imports this one.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from broker import __version__
from broker.cli.bench import add_bench_parser
from broker.cli.check import add_check_parser
from broker.cli.consume import add_consume_parser
from broker.cli.demo import add_demo_parser
from broker.cli.output import error_line
from broker.cli.publish import add_publish_parser
from broker.errors import BrokerError
from broker.url.parse import mask_password

__all__ = ["build_parser", "main"]

PROG = "brokerpool"
#: Loggers of the three packages; configured here and nowhere else.
_LOGGERS = ("broker", "transports", "pools")

Command = Callable[[argparse.Namespace], int]


class _ExitRequest(Exception):
    """argparse wanted to exit (``--help`` or a usage error); carries the code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that reports exits instead of calling ``sys.exit``.

    ``main()`` returns the exit code, so tests can call ``main([...])`` and
    the console script hands the code to ``sys.exit`` itself.
    """

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise _ExitRequest(status)


def _verbosity_parent() -> argparse.ArgumentParser:
    # SUPPRESS keeps a subcommand's default from overwriting a ``-v`` given
    # before the subcommand name.
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="log progress (INFO) and show tracebacks on errors; twice for DEBUG",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``brokerpool`` command."""
    parser = _Parser(
        prog=PROG,
        description="Connect to message brokers, check them, move messages and measure speed.",
        epilog="Exit codes: 0 success, 1 broker or configuration error, 2 usage error.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log progress and show tracebacks"
    )
    parser.add_argument("-V", "--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    parent = _verbosity_parent()
    add_demo_parser(sub, parent)
    add_check_parser(sub, parent)
    add_publish_parser(sub, parent)
    add_consume_parser(sub, parent)
    add_bench_parser(sub, parent)
    return parser


class _MaskingFormatter(logging.Formatter):
    """Belt and braces: mask any ``user:password@`` that reaches a log line."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_password(super().format(record))


def _configure_logging(verbose: int) -> Callable[[], None]:
    """Send the library's log records to stderr; return an undo function."""
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_MaskingFormatter(f"{PROG}: %(levelname)s %(name)s: %(message)s"))
    saved: list[tuple[logging.Logger, int, bool]] = []
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False

    def undo() -> None:
        for logger, old_level, old_propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(old_level)
            logger.propagate = old_propagate

    return undo


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``brokerpool`` command with ``argv`` (default ``sys.argv[1:]``).

    Returns:
        The exit code: 0 success, 1 error, 2 usage error, 130 interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _ExitRequest as request:
        return request.code
    undo_logging = _configure_logging(args.verbose)
    command: Command = args.func
    try:
        return command(args)
    except _ExitRequest as request:
        return request.code
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader went away (``brokerpool consume ... | head``): stop quietly.
        _silence_stdout()
        return 1
    except (BrokerError, OSError) as exc:
        # OSError covers unreadable stdin and the like; broker errors are
        # already translated by the transports.
        if args.verbose:
            import traceback

            sys.stderr.write(mask_password("".join(traceback.format_exception(exc))))
        sys.stderr.write(f"{PROG}: error: {error_line(exc)}\n")
        return 1
    finally:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _silence_stdout()
        undo_logging()


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # not a real file (captured in tests): nothing will flush it at exit
