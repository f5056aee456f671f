"""Every private redis-py member the Redis transport relies on, and the only code touching them.

redis-py has no public way to do two things the transport needs:

* change the timeout of a connected socket (:func:`set_socket_timeout` reads
  the socket a redis-py connection holds): while connecting, every reply
  waits only for what is left of ``connect_timeout``; before closing, the
  owner's last command gets at most the ``close(timeout)`` it was given, so
  that a dead server cannot hold ``close()`` for a whole ``socket_timeout``
  (:func:`cut_socket_timeout`);
* wrap the socket with a given :class:`ssl.SSLContext` (``rediss://`` with the
  transport's TLS settings; redis-py builds a context of its own from its
  ``ssl_*`` options): :class:`WrappingSSLConnection` overrides the hook
  redis-py's ``SSLConnection`` wraps its socket with, and, for the asyncio
  transport, :class:`AsyncTLSConnection` the arguments redis.asyncio's
  ``Connection`` opens its stream with (``ssl=`` and ``server_hostname=``).

:data:`PRIVATE_MEMBERS` lists each member with the redis-py code that uses it;
:func:`missing_members` names those the installed redis-py no longer has
(``tests/unit/test_redispy_internals.py`` fails on any, and on any other
module of ``transports`` that touches one). Checked against redis-py 5.1.0,
5.2.1, 5.3.1, 6.4.0, 7.0.0, 7.1.0, 7.2.0, 7.4.1, 8.0.1 and 8.1.0; redis-py
5.0 lacks ``SSLConnection._wrap_socket_with_ssl`` (it wrapped the socket
inside ``_connect``). ``redis.asyncio.Connection._connection_arguments`` was
checked against 7.2.0 and 8.1.0.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Mapping
from typing import Any

import redis
import redis.asyncio
from redis.connection import AbstractConnection

from transports._shared.fence import PrivateMember
from transports._shared.fence import missing_members as _missing

__all__ = [
    "PRIVATE_MEMBERS",
    "AsyncTLSConnection",
    "PrivateMember",
    "WrappingSSLConnection",
    "cut_socket_timeout",
    "missing_members",
    "set_socket_timeout",
]


PRIVATE_MEMBERS: tuple[PrivateMember, ...] = (
    PrivateMember(
        AbstractConnection, "_sock", "disconnect",
        "the connected socket, whose timeout is cut while connecting and before closing",
    ),
    PrivateMember(
        redis.SSLConnection, "_wrap_socket_with_ssl", "_connect",
        "hook: wrap the socket with the transport's TLS context",
    ),
    PrivateMember(
        redis.asyncio.Connection, "_connection_arguments", "_connect",
        "hook: open the asyncio stream with the transport's TLS context and server name",
    ),
)  # fmt: skip


def missing_members() -> list[str]:
    """Each member of :data:`PRIVATE_MEMBERS` the installed redis-py lacks, and why it matters."""
    return _missing(PRIVATE_MEMBERS)


def set_socket_timeout(connection: AbstractConnection, seconds: float | None) -> None:
    """Give the socket ``connection`` holds now a timeout of ``seconds`` (nothing if it holds none).

    A reconnection gets the connection's configured ``socket_timeout`` again.
    """
    sock: socket.socket | None = connection._sock
    if sock is not None:
        sock.settimeout(seconds)


def cut_socket_timeout(client: redis.Redis, seconds: float) -> None:
    """Give the socket of a single-connection ``client`` a timeout of ``seconds`` from now on.

    Only the socket connected now is changed (a reconnection gets the
    configured timeout again); nothing happens when ``client`` holds none.
    """
    connection = client.connection  # set by redis-py for single_connection_client=True
    if connection is not None:
        set_socket_timeout(connection, seconds)


class WrappingSSLConnection(redis.SSLConnection):
    """A redis-py TLS connection that wraps each connected socket with ``wrap``.

    ``wrap`` (a keyword argument, beside redis-py's own) takes the plain TCP
    socket and returns it wrapped, the handshake done
    (``context.wrap_socket(sock, server_hostname=...)``); redis-py's ``ssl_*``
    options are not used.
    """

    def __init__(self, *, wrap: Callable[[socket.socket], ssl.SSLSocket], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wrap = wrap

    def _wrap_socket_with_ssl(self, sock: socket.socket) -> ssl.SSLSocket:
        return self.wrap(sock)


class AsyncTLSConnection(redis.asyncio.Connection):
    """A redis.asyncio connection that opens its stream with TLS settings of our own.

    ``ssl_context`` and ``server_hostname`` (keyword arguments beside
    redis-py's own) go to :func:`asyncio.open_connection`, which does the
    handshake; redis-py's ``ssl_*`` options are not used.
    """

    def __init__(self, *, ssl_context: ssl.SSLContext, server_hostname: str, **kwargs: Any) -> None:
        # redis-py does not annotate Connection.__init__; its keywords are redis-py's to check.
        init: Callable[..., None] = super().__init__
        init(**kwargs)
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname

    def _connection_arguments(self) -> Mapping[str, Any]:
        arguments = dict(super()._connection_arguments())
        arguments["ssl"] = self.ssl_context
        arguments["server_hostname"] = self.server_hostname
        return arguments
