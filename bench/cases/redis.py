"""Cases 12 and 13: the redis:// transport next to kombu's Redis transport.

Both libraries talk to the same Redis (``--redis-url``, default database 14)
with their default settings. Every key a run creates is deleted after it:
brokerpool runs under a fresh ``key_prefix`` and everything under it goes;
kombu has no prefix (its ``global_keyprefix`` wraps every command, which
would slow it down), so its keys are found by the unique queue name, plus the
``unacked`` bookkeeping keys when they did not exist before the run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from typing import Any

from bench.cases.common import BODY_100, need, unique_name
from bench.cases.consume import PREFETCH, consume_all
from bench.cases.memory import round_trips
from bench.harness import BROKERPOOL, KOMBU, Case, Env, Runner, Skip

__all__ = ["DEFAULT_URL", "cases", "server_version"]

DEFAULT_URL = "redis://127.0.0.1:6379/14"
#: Keys kombu's Redis transport shares between all its queues (unacked messages).
_KOMBU_SHARED_KEYS = ("unacked", "unacked_index", "unacked_mutex")

#: ``connect(env, name)``: a library's Connection to ``env.url``, and its Queue class.
Connect = Callable[[Env, str], ContextManager[tuple[Any, Any]]]
#: ``body(conn, queue_cls, name, n)``: the case's ``measure()`` on that connection.
Body = Callable[[Any, Any, str, int], ContextManager[Callable[[], float]]]


def _client(url: str) -> Any:
    """A redis-py client for ``url`` that answered a PING, else :class:`Skip`."""
    redis = need("redis")
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        raise Skip(f"no Redis answering at {url}: {exc}") from exc
    return client


def server_version(url: str) -> str:
    """``Redis <version>`` of the server at ``url``, or why it could not be asked."""
    try:
        client = _client(url)
    except Skip as exc:
        return f"unknown ({exc})"
    try:
        return f"Redis {client.info('server')['redis_version']}"
    finally:
        client.close()


@contextlib.contextmanager
def _deleting(url: str, pattern: str, shared: tuple[str, ...] = ()) -> Iterator[None]:
    """Afterwards delete the keys matching ``pattern`` and those of ``shared`` made meanwhile."""
    client = _client(url)
    try:
        made = [key for key in shared if not client.exists(key)]
        yield
    finally:
        try:
            keys = [*client.scan_iter(match=pattern, count=1000), *made]
            if keys:
                client.delete(*keys)
        finally:
            client.close()


@contextlib.contextmanager
def _brokerpool(env: Env, name: str) -> Iterator[tuple[Any, Any]]:
    need("redis")
    from broker import Connection, Queue

    prefix = f"{name}:"
    options = {"key_prefix": prefix}
    with _deleting(env.url, f"{prefix}*"), Connection(env.url, transport_options=options) as conn:
        yield conn, Queue


@contextlib.contextmanager
def _kombu(env: Env, name: str) -> Iterator[tuple[Any, Any]]:
    need("redis")
    kombu = need("kombu")
    with _deleting(env.url, f"*{name}*", _KOMBU_SHARED_KEYS), kombu.Connection(env.url) as conn:
        yield conn, kombu.Queue


def _runner(connect: Connect, body: Body, full: int, quick: int) -> Runner:
    """A runner: ``body``'s ``measure()`` on a queue of its own, ``full`` (``quick``) messages."""

    @contextlib.contextmanager
    def runner(env: Env) -> Iterator[Callable[[], float]]:
        name = unique_name("redis")
        with (
            connect(env, name) as (conn, queue_cls),
            body(conn, queue_cls, name, env.n(full, quick)) as measure,
        ):
            yield measure

    return runner


def _put_get(conn: Any, queue_cls: Any, name: str, n: int) -> ContextManager[Callable[[], float]]:
    return round_trips(conn, name, n)


@contextlib.contextmanager
def _consume(conn: Any, queue_cls: Any, name: str, n: int) -> Iterator[Callable[[], float]]:
    queue_cls(name)(conn.default_channel).declare()
    queue = queue_cls(name, no_declare=True)
    producer = conn.Producer()

    def measure() -> float:
        for _ in range(n):  # untimed: the library's own publish, to the default exchange
            producer.publish(BODY_100, routing_key=name)
        return consume_all(conn, queue, n)

    yield measure


def _case(key: str, title: str, unit: str, body: Body, n: tuple[int, int], method: str,
          target: str = "") -> Case:  # fmt: skip
    """A Redis case: ``body`` for both libraries, ``n`` = (full, quick) messages per round."""
    where = (
        "Redis at --redis-url (default database 14); brokerpool under a key_prefix of its "
        "own, kombu with its defaults. py-amqp has no Redis transport."
    )
    return Case(
        key=key,
        title=title,
        unit=unit,
        higher_is_better=True,
        runners={BROKERPOOL: _runner(_brokerpool, body, *n), KOMBU: _runner(_kombu, body, *n)},
        method=f"{method} {where}",
        target=target,
        needs=frozenset({"redis"}),
    )


def cases() -> list[Case]:
    return [
        _case("redis", "redis:// put + get + ack", "ops/s", _put_get, (2000, 100),
              "2,000 round trips per round, as in the memory:// case: SimpleQueue.put("
              "100-byte body), get(block=True, timeout=1), ack().",
              target="≥ kombu"),
        _case("redis-consume", "redis:// consume + ack, prefetch 100", "msg/s", _consume,
              (5000, 200),
              "Each round publishes 5,000 100-byte messages to the library's own queue with "
              "its own Producer (untimed), then times, as in the consume case: start a "
              f"Consumer(on_message=...) with prefetch {PREFETCH}, receive and ack every "
              "message one by one, cancel."),
    ]  # fmt: skip
