"""The fence around redis-py's private members (transports/redis/redispy_internals.py).

The Redis transport relies on a few private redis-py members. These tests
fail, naming the member, when the installed redis-py no longer has one as
relied on, and when a module other than redispy_internals touches one.
"""

from __future__ import annotations

import pathlib
import re
import socket
import ssl

import pytest
import redis

import transports
from transports.redis import redispy_internals
from transports.redis.redispy_internals import (
    PRIVATE_MEMBERS,
    PrivateMember,
    WrappingSSLConnection,
    cut_socket_timeout,
    set_socket_timeout,
)


@pytest.mark.parametrize("member", PRIVATE_MEMBERS, ids=str)
def test_the_installed_redis_py_still_has_the_member(member: PrivateMember) -> None:
    problem = member.problem()
    assert problem is None, f"redis-py {redis.__version__}: {problem}"


def test_all_members_are_checked_together() -> None:
    assert redispy_internals.missing_members() == []


def test_a_member_redis_py_lacks_is_reported_by_name() -> None:
    gone = PrivateMember(redis.SSLConnection, "_no_such_member", "_connect", "an example")
    assert gone.problem() == (
        "redis.connection.SSLConnection._no_such_member: SSLConnection._connect no longer "
        "uses it (an example)"
    )
    moved = PrivateMember(redis.SSLConnection, "_wrap_socket_with_ssl", "no_such", "an example")
    assert moved.problem() == (
        "redis.connection.SSLConnection._wrap_socket_with_ssl: SSLConnection.no_such is gone "
        "(an example)"
    )


def test_no_other_module_touches_a_listed_member() -> None:
    names = sorted({member.name for member in PRIVATE_MEMBERS})
    touch = re.compile(r"(\.|\bdef )(" + "|".join(map(re.escape, names)) + r")\b")
    fence = pathlib.Path(redispy_internals.__file__).resolve()
    offenders = [
        f"{path.name}:{number}: {line.strip()}"
        for path in pathlib.Path(transports.__file__).parent.rglob("*.py")
        if path.resolve() != fence
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if touch.search(line)
    ]
    assert offenders == []


def test_the_ssl_connection_class_wraps_with_the_given_function() -> None:
    wrapped: list[socket.socket] = []

    def wrap(sock: socket.socket) -> ssl.SSLSocket:
        wrapped.append(sock)
        raise ssl.SSLError("stop here")

    assert issubclass(WrappingSSLConnection, redis.SSLConnection)
    left, right = socket.socketpair()
    with left, right, pytest.raises(ssl.SSLError, match="stop here"):
        WrappingSSLConnection(wrap=wrap)._wrap_socket_with_ssl(left)
    assert wrapped == [left]


def test_cutting_the_timeout_of_a_client_without_a_connection_does_nothing() -> None:
    client = redis.Redis(host="127.0.0.1", port=1)  # not a single-connection client: no I/O
    cut_socket_timeout(client, 0.5)
    assert client.connection is None


def test_setting_the_timeout_of_an_unconnected_connection_does_nothing() -> None:
    connection = redis.Connection(host="127.0.0.1", port=1)  # not connected: no socket
    set_socket_timeout(connection, 0.5)
    assert connection.socket_timeout == 5  # redis-py's default, left alone
