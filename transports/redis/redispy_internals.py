"""Every private redis-py member the Redis transport relies on, and the only code touching them.

redis-py has no public way to do two things the transport needs:

* cut the timeout of a connected socket: before closing, the owner's last
  command gets at most the ``close(timeout)`` it was given, so that a dead
  server cannot hold ``close()`` for a whole ``socket_timeout``
  (:func:`cut_socket_timeout` reads the socket a redis-py connection holds);
* wrap the socket with a given :class:`ssl.SSLContext` (``rediss://`` with the
  transport's TLS settings; redis-py builds a context of its own from its
  ``ssl_*`` options): :func:`ssl_connection_class` overrides the hook
  redis-py's ``SSLConnection`` wraps its socket with.

:data:`PRIVATE_MEMBERS` lists each member with the redis-py code that uses it;
:func:`missing_members` names those the installed redis-py no longer has
(``tests/unit/test_redispy_internals.py`` fails on any, and on any other
module of ``transports`` that touches one). Checked against redis-py 5.1.0,
5.2.1, 5.3.1, 6.4.0, 7.0.0, 7.1.0, 7.2.0, 7.4.1, 8.0.1 and 8.1.0; redis-py
5.0 lacks ``SSLConnection._wrap_socket_with_ssl`` (it wrapped the socket
inside ``_connect``).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

import redis
from redis.connection import AbstractConnection

from transports._shared.fence import PrivateMember
from transports._shared.fence import missing_members as _missing

__all__ = [
    "PRIVATE_MEMBERS",
    "PrivateMember",
    "cut_socket_timeout",
    "missing_members",
    "ssl_connection_class",
]


PRIVATE_MEMBERS: tuple[PrivateMember, ...] = (
    PrivateMember(
        AbstractConnection, "_sock", "disconnect",
        "the connected socket, whose timeout is cut before closing",
    ),
    PrivateMember(
        redis.SSLConnection, "_wrap_socket_with_ssl", "_connect",
        "hook: wrap the socket with the transport's TLS context",
    ),
)  # fmt: skip


def missing_members() -> list[str]:
    """Each member of :data:`PRIVATE_MEMBERS` the installed redis-py lacks, and why it matters."""
    return _missing(PRIVATE_MEMBERS)


def cut_socket_timeout(client: redis.Redis, seconds: float) -> None:
    """Give the socket of a single-connection ``client`` a timeout of ``seconds`` from now on.

    Only the socket connected now is changed (a reconnection gets the
    configured timeout again); nothing happens when ``client`` holds none.
    """
    connection = client.connection  # set by redis-py for single_connection_client=True
    if connection is None:
        return
    sock: socket.socket | None = connection._sock
    if sock is not None:
        sock.settimeout(seconds)


def ssl_connection_class(wrap: Callable[[socket.socket], ssl.SSLSocket]) -> type[redis.Connection]:
    """A redis-py connection class that wraps each connected socket with ``wrap``.

    ``wrap`` takes the plain TCP socket and returns it wrapped, the handshake
    done (``context.wrap_socket(sock, server_hostname=...)``).
    """

    class WrappingSSLConnection(redis.SSLConnection):
        def _wrap_socket_with_ssl(self, sock: socket.socket) -> ssl.SSLSocket:
            return wrap(sock)

    return WrappingSSLConnection
