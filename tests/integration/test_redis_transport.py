"""What the Redis transport does beyond the conformance suite, against the machine's Redis.

Every test works in db 13 under a key prefix of its own (``redis_key_prefix``),
deleted afterwards. Crashes are simulated in-process with
:meth:`~transports.redis.connection.RedisConnection.teardown` (sockets dropped, nothing
said to Redis); the kill -9 test with a real process is in
``tests/reliability/test_redis_reliability.py``.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from broker import Connection
from broker.entities.queue import Queue
from broker.errors import (
    AccessRefused,
    AuthenticationError,
    ConfigurationError,
    NotFound,
    OperationalError,
    PreconditionFailed,
    RecoverableConnectionError,
    TLSHandshakeError,
)
from broker.messaging.producer import Consumer, Producer
from tests.conformance import publish
from tests.support.routing_cases import HEADERS_CASES, TOPIC_CASES
from tests.support.services import REDIS_DB, REDIS_HOST, REDIS_PORT
from tests.support.wait import drain_until
from transports.base import ConnectionParams
from transports.redis.options import keyspace
from transports.redis.redispy_internals import cut_socket_timeout
from transports.redis.transport import RedisConnection, Transport

pytestmark = pytest.mark.redis

Open = Callable[..., RedisConnection]


def keys(prefix: str) -> str:
    """What the transport's keys in the test database start with (hash-tagged)."""
    return keyspace(prefix, REDIS_DB)


@pytest.fixture
def raw(redis_url: str) -> redis.Redis:
    """A plain redis-py client on the test database, to look at the keys."""
    return redis.Redis(REDIS_HOST, REDIS_PORT, db=REDIS_DB)


@pytest.fixture
def connect(redis_key_prefix: str) -> Iterator[Open]:
    """Open transport connections under the test's key prefix; all closed afterwards."""
    opened: list[RedisConnection] = []

    def _open(**options: Any) -> RedisConnection:
        params = ConnectionParams(
            hostname=REDIS_HOST,
            port=REDIS_PORT,
            virtual_host=str(REDIS_DB),
            transport_options={"key_prefix": redis_key_prefix, **options},
        )
        connection = Transport().connect(params)
        opened.append(connection)
        return connection

    yield _open
    for connection in opened:
        connection.close()


# -- URLs and options -----------------------------------------------------------------------


def test_redis_urls_have_no_default_login_and_the_path_is_the_database() -> None:
    info = Connection("redis://cache.example:6390/4").info()
    assert (info["userid"], info["password"], info["virtual_host"]) == (None, None, "4")
    assert (info["port"], info["transport"]) == (6390, "redis")
    secret = Connection("redis://:s3cret@127.0.0.1/2")
    assert secret.as_uri(include_password=True) == "redis://:s3cret@127.0.0.1:6379/2"
    assert "s3cret" not in repr(secret) and "s3cret" not in secret.as_uri()
    assert Connection("rediss://127.0.0.1/0").info()["ssl"] is True
    assert Connection("redis://127.0.0.1").info()["port"] == 6379


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"visibilty_timeout": 5}, "did you mean 'visibility_timeout'"),
        ({"visibility_timeout": 0}, "visibility_timeout must be a finite number of seconds > 0"),
        ({"key_prefix": 3}, "'key_prefix' must be a string"),
        ({"max_batch": 0}, "'max_batch' must be an integer in 1..10000"),
    ],
)
def test_bad_transport_options_are_refused_before_any_io(
    options: dict[str, Any], message: str
) -> None:
    # Refused by Connection() itself (nothing listens on port 1 anyway).
    with pytest.raises(ConfigurationError, match=message):
        Connection("redis://127.0.0.1:1/0", transport_options=options)
    params = ConnectionParams(hostname="127.0.0.1", port=1, transport_options=options)
    with pytest.raises(ConfigurationError, match=message):
        Transport().connect(params)  # and by the transport, for callers below the façade


def test_a_path_that_is_not_a_database_number_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="the path of a redis URL is the database number"):
        Connection("redis://127.0.0.1:6379/orders").ensure_connection(max_retries=0)


@pytest.mark.parametrize("path", ["orders", "abc", "-1", "1.5", "2147483648", "%31%32x"])
def test_a_path_that_is_not_a_database_number_is_refused_when_the_connection_is_made(
    path: str,
) -> None:
    url = f"redis://:s3cret@127.0.0.1:1/{path}"  # port 1: any I/O would be refused
    with pytest.raises(ConfigurationError) as info:
        Connection(url)
    message = str(info.value)
    assert message.startswith(f"broker 'redis://:**@127.0.0.1:1/{path}': the path of a redis")
    assert "s3cret" not in message


def test_rediss_to_a_port_that_answers_in_plain_text_is_not_retried(rabbitmq_url: str) -> None:
    # RabbitMQ answers a TLS hello with its AMQP protocol header: never TLS, however often tried.
    retried: list[BaseException] = []
    conn = Connection("rediss://127.0.0.1:5672/0", connect_timeout=5)
    started = time.monotonic()
    with pytest.raises(TLSHandshakeError) as info:
        conn.ensure_connection(max_retries=3, errback=lambda exc, interval: retried.append(exc))
    assert time.monotonic() - started < 4  # at once, not after the connect timeout
    assert retried == []
    assert "cannot succeed (WRONG_VERSION_NUMBER)" in str(info.value)
    assert "is this its TLS port?" in str(info.value)
    assert info.value.__cause__ is not None  # redis-py's error, from OpenSSL's


def test_draining_with_a_nan_timeout_is_refused_at_once(redis_url: str) -> None:
    with Connection(redis_url) as conn:
        conn.connect()
        with pytest.raises(ConfigurationError, match="timeout must be None"):
            conn.drain_events(timeout=math.nan)
        with pytest.raises(TimeoutError):  # the connection still waits as asked
            conn.drain_events(timeout=0.05)


def test_wrong_password_is_an_authentication_error_and_is_not_retried(redis_url: str) -> None:
    started = time.monotonic()
    with pytest.raises(AuthenticationError, match="Redis refused the login"):
        Connection("redis://nobody:wrong@127.0.0.1:6379/13").ensure_connection(max_retries=5)
    assert time.monotonic() - started < 1.0


def test_refused_port_is_recoverable() -> None:
    with pytest.raises(OperationalError) as failure:
        Connection("redis://127.0.0.1:1/0").ensure_connection(max_retries=0)
    assert isinstance(failure.value.__cause__, RecoverableConnectionError)


def test_server_properties_and_repr(connect: Open) -> None:
    connection = connect()
    assert connection.server_properties["product"] == "Redis"
    assert connection.server_properties["version"].split(".")[0].isdigit()
    assert "db=13 open" in repr(connection)
    assert 0 < connection.heartbeat <= 75


# -- priorities and message encoding ------------------------------------------------------


def test_priority_queue_delivers_highest_first_and_fifo_within_a_priority(connect: Open) -> None:
    channel = connect().channel()
    channel.queue_declare("prio", auto_delete=False, arguments={"x-max-priority": 10})
    for body, priority in [(b"low", 1), (b"high-a", 9), (b"mid", 5), (b"high-b", 9), (b"top", 99)]:
        publish(channel, "prio", body, priority=priority)
    publish(channel, "prio", b"none")
    first = channel.basic_get("prio")
    assert first.body == b"top"  # above x-max-priority counts as the maximum
    channel.basic_reject(first.delivery_tag, requeue=True)
    bodies = [channel.basic_get("prio", no_ack=True).body for _ in range(6)]
    assert bodies == [b"top", b"high-a", b"high-b", b"mid", b"low", b"none"]


def test_invalid_max_priority_fails_precondition(connect: Open) -> None:
    channel = connect().channel()
    with pytest.raises(PreconditionFailed, match="x-max-priority"):
        channel.queue_declare("prio", arguments={"x-max-priority": 1000})
    assert not channel.is_open


def test_headers_keep_bytes_datetimes_and_decimals(connect: Open) -> None:
    channel = connect().channel()
    channel.queue_declare("typed", auto_delete=False)
    when = datetime.datetime(2026, 11, 21, 12, 30, tzinfo=datetime.UTC)
    headers = {"raw": b"\x00\xff", "when": when, "amount": decimal.Decimal("1.10"), "n": [1, 2]}
    publish(channel, "typed", b"x", application_headers=headers, timestamp=when)
    message = channel.basic_get("typed", no_ack=True)
    assert message.headers == headers
    assert message.properties["timestamp"] == when


def test_a_header_of_an_unsupported_type_is_refused(connect: Open) -> None:
    channel = connect().channel()
    channel.queue_declare("typed", auto_delete=False)
    with pytest.raises(ConfigurationError, match="holds object"):
        publish(channel, "typed", b"x", application_headers={"o": object()})


# -- reliable acknowledgement --------------------------------------------------------------


def test_a_crashed_connections_unacked_messages_return_after_the_visibility_timeout(
    connect: Open,
) -> None:
    crashed = connect(visibility_timeout=1)
    channel = crashed.channel()
    channel.queue_declare("work", auto_delete=False)
    for n in range(5):
        publish(channel, "work", b"%d" % n)
    held = [channel.basic_get("work") for _ in range(5)]
    assert all(m is not None for m in held)
    crashed.teardown()  # the process "died": nothing told Redis
    torn_down = time.monotonic()

    survivor = connect(visibility_timeout=1)
    got: list[Any] = []
    survivor.channel().basic_consume("work", callback=got.append, no_ack=True)
    drain_until(survivor, lambda: len(got) >= 5)
    waited = time.monotonic() - torn_down
    assert [m.body for m in got] == [b"0", b"1", b"2", b"3", b"4"]
    assert all(m.delivery_info["redelivered"] for m in got)
    assert 0.9 <= waited < 3.0


def test_a_connection_that_lost_its_lease_cannot_ack(
    connect: Open, raw: redis.Redis, redis_key_prefix: str
) -> None:
    slow = connect()
    channel = slow.channel()
    channel.queue_declare("work", auto_delete=False)
    publish(channel, "work", b"job")
    message = channel.basic_get("work")
    # The lease runs out (as if the process had stalled past visibility_timeout)...
    raw.zadd(f"{keys(redis_key_prefix)}leases", {slow.uid: 0})
    other = connect().channel()  # ...and the next client to connect puts the job back.
    again = other.basic_get("work", no_ack=True)
    assert (again.body, again.delivery_info["redelivered"]) == (b"job", True)
    with pytest.raises(RecoverableConnectionError, match="lease ran out"):
        channel.basic_ack(message.delivery_tag)
    assert not slow.is_open


def test_close_returns_unacked_messages_at_once(connect: Open) -> None:
    first = connect()
    channel = first.channel()
    channel.queue_declare("work", auto_delete=False)
    publish(channel, "work", b"job")
    assert channel.basic_get("work") is not None
    first.close()
    again = connect().channel().basic_get("work", no_ack=True)
    assert (again.body, again.delivery_info["redelivered"]) == (b"job", True)


def test_closing_cuts_the_socket_timeout_of_the_owners_last_command(redis_key_prefix: str) -> None:
    # RedisConnection.close(timeout) relies on this to bound its farewell call.
    client = redis.Redis(
        REDIS_HOST,
        REDIS_PORT,
        db=REDIS_DB,
        single_connection_client=True,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        cut_socket_timeout(client, 0.1)
        with pytest.raises(redis.TimeoutError):
            # Without the cut (no socket timeout), Redis would answer None after 5 s.
            client.blpop([f"{redis_key_prefix}nothing"], timeout=5)
    finally:
        client.close()


def test_a_publish_wakes_a_waiting_consumer_at_once(connect: Open) -> None:
    consumer_side, publisher_side = connect(), connect()
    channel = consumer_side.channel()
    channel.queue_declare("wake", auto_delete=False)
    got: list[Any] = []
    channel.basic_consume("wake", callback=got.append, no_ack=True)
    sender = threading.Timer(0.2, lambda: publish(publisher_side.channel(), "wake", b"now"))
    started = time.monotonic()
    sender.start()
    consumer_side.drain_events(timeout=10)
    sender.join()
    assert [m.body for m in got] == [b"now"]
    assert time.monotonic() - started < 1.0  # woken by the notification, not a poll


def test_global_prefetch_limits_the_whole_channel(connect: Open) -> None:
    connection = connect()
    channel = connection.channel()
    channel.queue_declare("a", auto_delete=False)
    channel.queue_declare("b", auto_delete=False)
    for n in range(4):
        publish(channel, "a", b"a%d" % n)
        publish(channel, "b", b"b%d" % n)
    channel.basic_qos(0, 3, True)
    got: list[Any] = []
    channel.basic_consume("a", callback=got.append)
    channel.basic_consume("b", callback=got.append)
    drain_until(connection, lambda: len(got) >= 3)
    with contextlib.suppress(TimeoutError):
        connection.drain_events(timeout=0.3)
    assert len(got) == 3
    channel.basic_ack(got[-1].delivery_tag, multiple=True)
    drain_until(connection, lambda: len(got) >= 6)


# -- queues owned by connections and consumers ----------------------------------------------


def test_exclusive_queue_is_locked_to_its_connection_and_goes_with_it(connect: Open) -> None:
    owner, other = connect(), connect()
    owner.channel().queue_declare("mine", exclusive=True)
    with pytest.raises(Exception, match="RESOURCE_LOCKED") as locked:
        other.channel().queue_declare("mine", passive=True)
    assert locked.value.reply_code == 405  # type: ignore[attr-defined]
    owner.close()
    with pytest.raises(NotFound):
        other.channel().queue_declare("mine", passive=True)


def test_exclusive_queue_of_a_crashed_connection_is_deleted_by_the_sweep(connect: Open) -> None:
    crashed = connect(visibility_timeout=0.5)
    crashed.channel().queue_declare("mine", exclusive=True)
    crashed.teardown()
    time.sleep(0.6)
    other = connect()  # connecting sweeps expired leases
    with pytest.raises(NotFound):
        other.channel().queue_declare("mine", passive=True)


def test_auto_delete_queue_goes_when_its_last_consumer_cancels(connect: Open) -> None:
    channel = connect().channel()
    channel.queue_declare("temp", auto_delete=True)
    first = channel.basic_consume("temp", callback=lambda m: None)
    second = channel.basic_consume("temp", callback=lambda m: None)
    assert channel.queue_declare("temp", passive=True).consumer_count == 2
    channel.basic_cancel(first)
    assert channel.queue_declare("temp", passive=True).consumer_count == 1
    channel.basic_cancel(second)
    with pytest.raises(NotFound):
        channel.queue_declare("temp", passive=True)


def test_deleting_a_consumed_queue_cancels_its_consumer(connect: Open) -> None:
    connection = connect()
    channel = connection.channel()
    channel.queue_declare("doomed", auto_delete=False)
    cancelled: list[str] = []
    tag = channel.basic_consume("doomed", callback=lambda m: None, on_cancel=cancelled.append)
    connect().channel().queue_delete("doomed")
    connection.drain_events(timeout=5)
    assert cancelled == [tag]
    assert channel.consumers == {}


def test_an_exclusive_consumer_keeps_others_out(connect: Open) -> None:
    channel = connect().channel()
    channel.queue_declare("solo", auto_delete=False)
    channel.basic_consume("solo", callback=lambda m: None, exclusive=True)
    other = connect().channel()
    with pytest.raises(AccessRefused, match="in exclusive use"):
        other.basic_consume("solo", callback=lambda m: None)


# -- the façade, producers and consumers on redis ------------------------------------------------


def test_producer_consumer_and_simple_queue_through_the_facade(
    redis_url: str, redis_key_prefix: str
) -> None:
    options = {"key_prefix": redis_key_prefix}
    with Connection(redis_url, transport_options=options) as conn:
        with conn.SimpleQueue("simple") as queue:
            queue.put({"n": 1})
            message = queue.get(timeout=2)
            assert message.payload == {"n": 1}
            message.ack()

        got: list[Any] = []
        jobs = Queue("jobs", routing_key="jobs")
        with Consumer(conn, [jobs], callbacks=[lambda body, m: (got.append(body), m.ack())]):
            producer = Producer(conn)
            with producer.confirms():
                for n in range(20):
                    producer.publish({"n": n}, routing_key="jobs")
            deadline = time.monotonic() + 5
            while len(got) < 20 and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=1)
        assert [body["n"] for body in got] == list(range(20))


def test_connection_pool_lends_redis_connections(redis_url: str, redis_key_prefix: str) -> None:
    conn = Connection(redis_url, transport_options={"key_prefix": redis_key_prefix})
    pool = conn.Pool(limit=2)
    try:
        with pool.acquire(timeout=2) as lease:
            channel = lease.default_channel
            channel.queue_declare("pooled", auto_delete=False)
            publish(channel, "pooled", b"x")
        with pool.acquire(timeout=2) as lease:
            assert lease.default_channel.basic_get("pooled", no_ack=True).body == b"x"
    finally:
        pool.force_close_all()
        conn.close()


# -- topology bookkeeping --------------------------------------------------------------------


def test_deleting_a_queue_removes_its_bindings(connect: Open) -> None:
    channel = connect().channel()
    channel.exchange_declare("x", "direct", auto_delete=False)
    channel.queue_declare("q", auto_delete=False)
    channel.queue_bind("q", "x", "k")
    channel.queue_delete("q")
    channel.queue_declare("q", auto_delete=False)
    channel.basic_publish(channel.prepare_message(b"lost"), "x", "k")
    assert channel.basic_get("q") is None


def test_auto_delete_exchange_goes_with_its_last_binding(connect: Open) -> None:
    channel = connect().channel()
    channel.exchange_declare("fleeting", "fanout", auto_delete=True)
    channel.queue_declare("q", auto_delete=False)
    channel.queue_bind("q", "fleeting")
    channel.exchange_declare("fleeting", "fanout", passive=True)
    channel.queue_unbind("q", "fleeting")
    with pytest.raises(NotFound):
        channel.exchange_declare("fleeting", "fanout", passive=True)


def test_nothing_is_left_in_redis_once_everything_is_deleted_and_closed(
    connect: Open, raw: redis.Redis, redis_key_prefix: str
) -> None:
    first, second = connect(), connect()
    channel = first.channel()
    channel.exchange_declare("src", "topic", auto_delete=False)
    channel.exchange_declare("dst", "fanout", auto_delete=False)
    channel.exchange_bind("dst", "src", "a.#")
    channel.queue_declare("q", auto_delete=False, arguments={"x-max-priority": 3})
    channel.queue_bind("q", "dst")
    channel.queue_declare("", exclusive=True)
    for n in range(3):
        channel.basic_publish(channel.prepare_message(b"%d" % n, priority=n), "src", "a.b")
    held = channel.basic_get("q")
    other = second.channel()
    other.basic_consume("q", callback=lambda m: None)
    with contextlib.suppress(TimeoutError):
        second.drain_events(timeout=0.5)
    channel.basic_ack(held.delivery_tag)
    second.close()
    channel.exchange_delete("src")
    channel.exchange_delete("dst")
    channel.queue_delete("q")
    first.close()
    space = keys(redis_key_prefix)  # every key under the prefix is in the keyspace
    left = sorted(k.decode().removeprefix(space) for k in raw.scan_iter(f"{redis_key_prefix}*"))
    assert left == ["exchanges", "seq"]
    assert sorted(raw.hkeys(f"{keys(redis_key_prefix)}exchanges")) == [
        b"amq.direct", b"amq.fanout", b"amq.headers", b"amq.match", b"amq.topic"
    ]  # fmt: skip


def test_no_consumer_is_recorded_for_a_connection_whose_lease_ran_out(
    connect: Open, raw: redis.Redis, redis_key_prefix: str
) -> None:
    stale = connect()
    channel = stale.channel()
    channel.queue_declare("work", auto_delete=False)
    raw.zadd(f"{keys(redis_key_prefix)}leases", {stale.uid: 0})
    with pytest.raises(RecoverableConnectionError, match="missed its visibility timeout"):
        channel.basic_consume("work", callback=lambda m: None, exclusive=True)
    assert raw.hlen(f"{keys(redis_key_prefix)}c:work") == 0
    # ...so another consumer is not locked out by a record nobody would ever release.
    connect().channel().basic_consume("work", callback=lambda m: None, exclusive=True)


def test_a_lease_lost_under_the_heartbeat_thread_is_raised_by_the_owners_next_call(
    connect: Open, raw: redis.Redis, redis_key_prefix: str
) -> None:
    connection = connect()
    channel = connection.channel()
    channel.queue_declare("work", auto_delete=False)
    raw.zadd(f"{keys(redis_key_prefix)}leases", {connection.uid: 0})
    connection.send_heartbeat()  # as the heartbeat thread would
    assert not connection.is_open
    with pytest.raises(RecoverableConnectionError, match="lease ran out"):
        channel.basic_get("work")


# -- routing, through real publishes ---------------------------------------------------------


@pytest.mark.parametrize(("pattern", "key", "matches"), TOPIC_CASES)
def test_topic_routing(connect: Open, pattern: str, key: str, matches: bool) -> None:
    channel = connect().channel()
    channel.exchange_declare("t", "topic", auto_delete=False)
    channel.queue_declare("q", auto_delete=False)
    channel.queue_bind("q", "t", pattern)
    channel.basic_publish(channel.prepare_message(b"m"), "t", key)
    assert (channel.basic_get("q", no_ack=True) is not None) is matches


@pytest.mark.parametrize(("arguments", "headers", "matches"), HEADERS_CASES)
def test_headers_routing(
    connect: Open, arguments: dict[str, Any], headers: Any, matches: bool
) -> None:
    channel = connect().channel()
    channel.exchange_declare("h", "headers", auto_delete=False)
    channel.queue_declare("q", auto_delete=False)
    channel.queue_bind("q", "h", arguments=arguments)
    channel.basic_publish(channel.prepare_message(b"m", application_headers=headers), "h", "")
    assert (channel.basic_get("q", no_ack=True) is not None) is matches
