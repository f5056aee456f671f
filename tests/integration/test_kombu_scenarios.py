"""kombu's own integration scenarios, rewritten against brokerpool's names, on the real brokers.

kombu 5.4.2 measures itself with the ``t/integration`` tests of its sdist (py-amqp
and Redis). The behaviours those tests check are restated here in our own words
and code, so that "kombu code runs by changing the import" is checked on every
run without fetching anything: the scenarios kombu shares between its transports
run on RabbitMQ, on Redis, and on Redis with kombu's ``global_keyprefix``
transport option; time to live and failover, which kombu checks on py-amqp
only, run on RabbitMQ; kombu's Redis-only ones on Redis. Where brokerpool
differs on purpose (``docs/migrating.rst``, "Deliberate differences"), the test
pins brokerpool's behaviour and says so: priorities in AMQP order on Redis too,
typed errors instead of redis-py's classes, a Redis ``drain_events`` that
dispatches what one delivery call took.

Names are unique per test; RabbitMQ entities are deleted afterwards and Redis
keys live under the test's own prefix in db 13.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import pools
from broker import (
    AuthenticationError,
    Connection,
    Consumer,
    Exchange,
    Message,
    OperationalError,
    Producer,
    Queue,
    RecoverableConnectionError,
)
from tests.support.net import ClosingServer, SilentServer, free_port
from tests.support.services import REDIS_DB, REDIS_HOST, REDIS_PORT
from tests.support.wait import drain_until, wait_until

PICKLE = "application/x-python-serialize"
BODY = {"hello": "world"}


@dataclass
class Broker:
    """One broker the scenarios run on, and the names a test declared there."""

    kind: str  # "rabbitmq" or "redis"
    url: str
    options: dict[str, Any]
    prefix: str  # of every queue and exchange name
    key_prefix: str = ""  # of every Redis key
    queues: list[str] = field(default_factory=list)
    exchanges: list[str] = field(default_factory=list)

    def connect(self, **kwargs: Any) -> Connection:
        """A fresh, unconnected Connection to this broker."""
        return Connection(self.url, transport_options=dict(self.options), **kwargs)

    def queue_name(self, name: str) -> str:
        """A queue name no other test uses (deleted after the test on RabbitMQ)."""
        unique = f"{self.prefix}-{name}"
        self.queues.append(unique)
        return unique

    def exchange_name(self, name: str) -> str:
        """An exchange name no other test uses (deleted after the test on RabbitMQ)."""
        unique = f"{self.prefix}-{name}"
        self.exchanges.append(unique)
        return unique

    def unreachable(self, port: int) -> str:
        """A URL of this broker's scheme where nothing answers like a broker."""
        scheme = "pyamqp" if self.kind == "rabbitmq" else "redis"
        return f"{scheme}://127.0.0.1:{port}" + ("//" if self.kind == "rabbitmq" else "/13")


def _rabbitmq(request: pytest.FixtureRequest, unique_name: str) -> Iterator[Broker]:
    url = request.getfixturevalue("rabbitmq_url")
    found = Broker("rabbitmq", url, {}, unique_name)
    yield found
    with Connection(url) as admin:
        for name in found.queues:
            with admin.channel() as channel:
                channel.queue_delete(name)
        for name in found.exchanges:
            with admin.channel() as channel:
                channel.exchange_delete(name)


def _redis(request: pytest.FixtureRequest, unique_name: str, option: str) -> Broker:
    request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_key_prefix")  # its keys are deleted afterwards
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
    return Broker("redis", url, {option: prefix}, unique_name, key_prefix=prefix)


@pytest.fixture(
    params=[
        pytest.param("rabbitmq", marks=pytest.mark.broker),
        pytest.param("key_prefix", marks=pytest.mark.redis),
        pytest.param("global_keyprefix", marks=pytest.mark.redis),
    ]
)
def broker(request: pytest.FixtureRequest, unique_name: str) -> Iterator[Broker]:
    """RabbitMQ; Redis with brokerpool's ``key_prefix``; Redis with kombu's ``global_keyprefix``."""
    if request.param == "rabbitmq":
        yield from _rabbitmq(request, unique_name)
    else:
        yield _redis(request, unique_name, request.param)


@pytest.fixture
def rabbitmq(request: pytest.FixtureRequest, unique_name: str) -> Iterator[Broker]:
    """RabbitMQ alone, for the scenarios kombu runs on py-amqp only."""
    yield from _rabbitmq(request, unique_name)


@pytest.fixture(
    params=[
        pytest.param("key_prefix", marks=pytest.mark.redis),
        pytest.param("global_keyprefix", marks=pytest.mark.redis),
    ]
)
def redis_broker(request: pytest.FixtureRequest, unique_name: str) -> Broker:
    """Redis alone, under either name of the key prefix option."""
    return _redis(request, unique_name, request.param)


@pytest.fixture
def conn(broker: Broker) -> Iterator[Connection]:
    connection = broker.connect()
    yield connection
    connection.close()


def _queue_size(conn: Connection, queue: Queue) -> int:
    with conn.channel() as channel:
        ok = queue(channel).queue_declare(passive=True)
    return ok.message_count if ok is not None else 0


# -- connecting ---------------------------------------------------------------------------


def test_connection_is_there_after_connect_and_none_after_close(conn: Connection) -> None:
    assert conn.connect() is conn
    assert conn.connection is not None

    conn.close()
    assert conn.connection is None
    assert not conn.connected  # reading it did not reconnect

    conn.connect()
    assert conn.connection is not None


@pytest.mark.parametrize("step", ["connect", "connection", "channel"])
def test_an_unreachable_broker_raises_from_every_first_use(broker: Broker, step: str) -> None:
    conn = Connection(broker.unreachable(free_port()), transport_options={"max_retries": 0})
    uses: dict[str, Callable[[], object]] = {
        "connect": conn.connect,
        "connection": lambda: conn.connection,
        "channel": conn.channel,
    }

    with pytest.raises(OperationalError) as failed:
        uses[step]()

    assert isinstance(failed.value.__cause__, RecoverableConnectionError)


def test_assigned_transport_options_bound_the_implicit_connect(broker: Broker) -> None:
    with ClosingServer() as server:
        conn = Connection(broker.unreachable(server.port))
        conn.transport_options = {"max_retries": 1}  # accepted by every transport

        with pytest.raises(OperationalError, match="after 2 attempts"):
            conn.default_channel  # noqa: B018

        assert server.accepted == 2


def test_default_channel_reconnects_a_closed_connection(conn: Connection) -> None:
    conn.connect()
    conn.close()
    assert conn.connection is None

    assert conn.default_channel.is_open
    assert conn.connection is not None


def test_channel_connects_implicitly(conn: Connection) -> None:
    with conn.channel() as channel:
        assert channel.is_open
        assert conn.connection is not None


def test_default_channel_connects_implicitly(conn: Connection) -> None:
    assert conn.default_channel.is_open
    assert conn.connection is not None


def test_a_pooled_connection_has_the_same_connection_attribute(broker: Broker) -> None:
    template = broker.connect()
    with pools.connections[template].acquire(block=True, timeout=5) as lent:
        first = lent.connection
        assert first is not None
    with pools.connections[template].acquire(block=True, timeout=5) as lent:
        assert lent.connection is first  # the same link, lent again without a reconnect


# -- publish and consume --------------------------------------------------------------------


def test_a_pickled_body_published_with_retry_and_declare_is_consumed(
    broker: Broker, conn: Connection
) -> None:
    name = broker.queue_name("test")
    queue = Queue(name, routing_key=name)
    received: list[tuple[Any, Message]] = []

    def on_message(body: Any, message: Message) -> None:
        received.append((body, message))
        message.ack()

    with conn, conn.channel() as channel:
        Producer(channel).publish(
            BODY,
            retry=True,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            declare=[queue],
            serializer="pickle",
        )
        consumer = Consumer(conn, [queue], accept=["pickle"])
        consumer.register_callback(on_message)
        with consumer:
            drain_until(conn, lambda: received)

    body, message = received[0]
    assert body == BODY
    assert message.payload == BODY
    assert message.content_type == PICKLE
    assert message.delivery_info["routing_key"] == name
    assert message.delivery_info["exchange"] == ""


def test_draining_an_empty_queue_times_out(broker: Broker, conn: Connection) -> None:
    queue = Queue(broker.queue_name("test_empty"), routing_key="test_empty")
    consumer = Consumer(conn, [queue], accept=["pickle"])
    consumer.register_callback(lambda body, message: pytest.fail("nothing was published"))

    with consumer, pytest.raises(socket.timeout):
        conn.drain_events(timeout=1)


@pytest.mark.parametrize("kind", ["SimpleQueue", "SimpleBuffer"])
def test_a_simple_queue_keeps_type_encoding_and_headers(
    broker: Broker, conn: Connection, kind: str
) -> None:
    name = broker.queue_name(kind)
    broker.exchanges.append(name)  # a simple queue declares an exchange of its name
    make = conn.SimpleQueue if kind == "SimpleQueue" else conn.SimpleBuffer

    with contextlib.closing(make(name)) as queue:
        queue.put({"Hello": "World"}, headers={"k1": "v1"})
        message = queue.get(timeout=5)
        message.ack()

    assert message.payload == {"Hello": "World"}
    assert message.content_type == "application/json"
    assert message.content_encoding == "utf-8"
    assert message.headers == {"k1": "v1"}


def test_a_simple_queue_on_a_given_channel_is_true_while_empty(
    broker: Broker, conn: Connection
) -> None:
    name = broker.queue_name("on-channel")
    broker.exchanges.append(name)
    channel = conn.channel()

    with contextlib.closing(conn.SimpleQueue(name, channel=channel)) as queue:
        assert len(queue) == 0
        assert queue  # kombu's __bool__: an empty queue object is still true
        assert queue.channel is channel

    assert channel.is_open  # the caller's channel is the caller's to close
    channel.close()


# -- exchange types -------------------------------------------------------------------------


def _publish_pickled(channel: Any, exchange: Exchange, queues: list[Queue], key: str = "") -> None:
    producer = Producer(channel, exchange=exchange)
    producer.publish(BODY, declare=queues or None, serializer="pickle", routing_key=key or None)


def _consume_one(conn: Connection, queue: Queue) -> Any:
    """What one ``drain_events(timeout=1)`` delivers from ``queue`` (acked), or socket.timeout."""
    received: list[Any] = []

    def on_message(body: Any, message: Message) -> None:
        message.ack()
        assert message.content_type == PICKLE
        received.append(body)

    with Consumer(conn, [queue], accept=["pickle"], callbacks=[on_message]):
        conn.drain_events(timeout=1)
    return received[0]


def test_direct_exchange_without_routing_key(broker: Broker, conn: Connection) -> None:
    exchange = Exchange(broker.exchange_name("test_direct"), type="direct")
    queue = Queue(broker.queue_name("direct1"), exchange=exchange)

    with conn.channel() as channel:
        _publish_pickled(channel, exchange, [queue])
        assert _consume_one(conn, queue) == BODY


def test_direct_exchange_routes_by_key(broker: Broker, conn: Connection) -> None:
    exchange = Exchange(broker.exchange_name("test_rk_direct"), type="direct")
    d1 = Queue(broker.queue_name("rk_direct1"), exchange=exchange, routing_key="d1")
    d2 = Queue(broker.queue_name("rk_direct2"), exchange=exchange, routing_key="d2")

    with conn.channel() as channel:
        _publish_pickled(channel, exchange, [d1, d2], "d1")
        assert _consume_one(conn, d1) == BODY
        with pytest.raises(socket.timeout):
            _consume_one(conn, d2)

        _publish_pickled(channel, exchange, [d1, d2], "d3")  # matches no binding: dropped
        for queue in (d1, d2):
            with pytest.raises(socket.timeout):
                _consume_one(conn, queue)


def test_fanout_exchange_copies_to_every_queue(broker: Broker, conn: Connection) -> None:
    exchange = Exchange(broker.exchange_name("test_fanout"), type="fanout")
    queues = [Queue(broker.queue_name(f"fanout{i}"), exchange=exchange) for i in (1, 2)]

    with conn.channel() as channel:
        _publish_pickled(channel, exchange, queues)
        assert [_consume_one(conn, queue) for queue in queues] == [BODY, BODY]


def test_topic_exchange_matches_patterns(broker: Broker, conn: Connection) -> None:
    exchange = Exchange(broker.exchange_name("test_topic"), type="topic")
    star1, star2, exact = (
        Queue(broker.queue_name(f"topic{i}"), exchange=exchange, routing_key=key)
        for i, key in ((1, "t.*"), (2, "t.*"), (3, "t"))
    )

    with conn.channel() as channel:
        _publish_pickled(channel, exchange, [star1, star2, exact], "t.1")
        assert _consume_one(conn, star1) == BODY
        assert _consume_one(conn, star2) == BODY
        with pytest.raises(socket.timeout):
            _consume_one(conn, exact)


def test_publishing_to_an_exchange_without_queues_succeeds(
    broker: Broker, conn: Connection
) -> None:
    exchange = Exchange(broker.exchange_name("test_empty_exchange"), type="topic")

    with conn.channel() as channel:
        exchange(channel).declare()
        _publish_pickled(channel, exchange, [], "t.1")


# -- priorities (AMQP order on every transport: the higher number first) ------------------------


def _publish_with_priorities(
    conn: Connection, queue: Queue, bodies: list[tuple[str, int]], expected: int
) -> None:
    with conn.channel() as channel:
        producer = Producer(channel)
        for text, priority in bodies:
            producer.publish(
                {"msg": text},
                retry=True,
                exchange=queue.exchange,
                routing_key=queue.routing_key,
                declare=[queue],
                serializer="pickle",
                priority=priority,
            )
    wait_until(lambda: _queue_size(conn, queue) == expected, message="the messages to be queued")


def test_the_higher_priority_is_consumed_first(broker: Broker, conn: Connection) -> None:
    name = broker.queue_name("priority_test")
    queue = Queue(name, routing_key=name, max_priority=10)
    _publish_with_priorities(conn, queue, [("first", 3), ("second", 6), ("third", 3)], 3)
    received: list[Any] = []

    consumer = Consumer(conn, [queue], accept=["pickle"])
    consumer.register_callback(lambda body, message: (received.append(body), message.ack()))
    with consumer:
        drain_until(conn, lambda: len(received) == 3)

    assert [body["msg"] for body in received] == ["second", "first", "third"]


def test_requeued_messages_keep_their_priority_place(broker: Broker, conn: Connection) -> None:
    name = broker.queue_name("priority_requeue_test")
    queue = Queue(name, routing_key=name, max_priority=10)
    _publish_with_priorities(conn, queue, [("first", 3), ("second", 6), ("third", 3)], 3)
    held: list[Message] = []
    bodies: list[Any] = []

    def keep(body: Any, message: Message) -> None:  # no ack: requeued below
        held.append(message)
        bodies.append(body)

    consumer = Consumer(conn, [queue], accept=["pickle"], callbacks=[keep])
    with consumer:
        drain_until(conn, lambda: len(held) == 3)
    for message in held:
        message.requeue()
    held.clear()
    bodies.clear()
    _publish_with_priorities(conn, queue, [("fourth", 9)], 4)

    with consumer:
        drain_until(conn, lambda: len(held) == 4)
    for message in held:
        message.ack()

    assert [body["msg"] for body in bodies] == ["fourth", "second", "first", "third"]


@pytest.mark.parametrize("kind", ["SimpleQueue", "SimpleBuffer"])
def test_a_simple_queue_with_max_priority_serves_the_higher_first(
    broker: Broker, conn: Connection, kind: str
) -> None:
    name = broker.queue_name(f"priority_{kind}")
    broker.exchanges.append(name)
    make = conn.SimpleQueue if kind == "SimpleQueue" else conn.SimpleBuffer

    with contextlib.closing(make(name, queue_opts={"max_priority": 10})) as queue:
        for text, priority in (("first", 1), ("second", 7), ("third", 1)):
            queue.put({"msg": text}, headers={"k1": "v1"}, priority=priority)
        wait_until(lambda: len(queue) == 3, message="the messages to be queued")
        got = []
        for _ in range(3):
            message = queue.get(timeout=5)
            message.ack()
            got.append(message.payload["msg"])

    assert got == ["second", "first", "third"]


# -- settling messages ------------------------------------------------------------------------


def test_an_acked_message_is_gone(broker: Broker, conn: Connection) -> None:
    with contextlib.closing(conn.SimpleQueue(broker.queue_name("test_ack"))) as queue:
        broker.exchanges.append(queue.name)
        queue.put({"Hello": "World"}, headers={"k1": "v1"})
        queue.get_nowait().ack()
        with pytest.raises(queue.Empty):
            queue.get_nowait()


def test_a_message_rejected_without_requeue_is_gone(broker: Broker, conn: Connection) -> None:
    with contextlib.closing(conn.SimpleQueue(broker.queue_name("test_reject"))) as queue:
        broker.exchanges.append(queue.name)
        queue.put({"Hello": "World"}, headers={"k1": "v1"})
        queue.get_nowait().reject(requeue=False)
        with pytest.raises(queue.Empty):
            queue.get_nowait()


@pytest.mark.parametrize("how", ["reject", "requeue"])
def test_a_requeued_message_comes_back(broker: Broker, conn: Connection, how: str) -> None:
    with contextlib.closing(conn.SimpleQueue(broker.queue_name(f"test_{how}"))) as queue:
        broker.exchanges.append(queue.name)
        queue.put({"Hello": "World"}, headers={"k1": "v1"})
        message = queue.get_nowait()
        if how == "reject":
            message.reject(requeue=True)
        else:
            message.requeue()
        again = queue.get_nowait()
        again.ack()

    assert again.body == message.body


# -- RabbitMQ only: time to live and failover ---------------------------------------------------


@pytest.mark.broker
def test_an_expired_message_is_never_delivered(rabbitmq: Broker) -> None:
    name = rabbitmq.queue_name("ttl_test")
    queue = Queue(name, routing_key=name)
    with rabbitmq.connect() as conn:
        with conn.channel() as channel:
            Producer(channel).publish(
                BODY, routing_key=name, declare=[queue], serializer="pickle", expiration=0.2
            )
        time.sleep(1.0)  # well past the expiration (seconds, as in kombu)
        consumer = Consumer(conn, [queue], accept=["pickle"])
        consumer.register_callback(lambda body, message: pytest.fail("the message had expired"))

        with consumer, pytest.raises(socket.timeout):
            conn.drain_events(timeout=1)


@pytest.mark.broker
@pytest.mark.parametrize("kind", ["SimpleQueue", "SimpleBuffer"])
def test_an_expired_message_leaves_a_simple_queue_empty(rabbitmq: Broker, kind: str) -> None:
    name = rabbitmq.queue_name(f"ttl_{kind}")
    rabbitmq.exchanges.append(name)
    conn = rabbitmq.connect()
    make = conn.SimpleQueue if kind == "SimpleQueue" else conn.SimpleBuffer

    with conn, contextlib.closing(make(name)) as queue:
        queue.put({"Hello": "World"}, headers={"k1": "v1"}, expiration=0.2)
        time.sleep(1.0)
        with pytest.raises(queue.Empty):
            queue.get(timeout=1)


@pytest.fixture
def failover(rabbitmq: Broker) -> Iterator[Connection]:
    """A Connection whose first alternate refuses, as in kombu's failover tests."""
    refused = f"pyamqp://127.0.0.1:{free_port()}//"
    connection = Connection(f"{refused};{rabbitmq.url}")
    yield connection
    connection.close()


@pytest.mark.broker
def test_failover_connects_to_the_second_alternate(failover: Connection) -> None:
    assert failover.connect() is failover
    assert failover.connection is not None
    failover.close()
    assert failover.connection is None
    failover.connect()
    assert failover.connection is not None


@pytest.mark.broker
def test_failover_publishes_and_consumes(rabbitmq: Broker, failover: Connection) -> None:
    name = rabbitmq.queue_name("failover")
    queue = Queue(name, routing_key=name)
    received: list[Any] = []
    with failover.channel() as channel:
        Producer(channel).publish(BODY, retry=True, routing_key=name, declare=[queue])
    consumer = Consumer(failover, [queue], callbacks=[lambda b, m: (received.append(b), m.ack())])
    with consumer:
        drain_until(failover, lambda: received)
    assert received == [BODY]


@pytest.mark.broker
def test_failover_to_an_empty_queue_times_out(rabbitmq: Broker, failover: Connection) -> None:
    queue = Queue(rabbitmq.queue_name("failover_empty"))
    with Consumer(failover, [queue], callbacks=[]), pytest.raises(socket.timeout):
        failover.drain_events(timeout=1)


@pytest.mark.broker
def test_failover_simple_buffer(rabbitmq: Broker, failover: Connection) -> None:
    name = rabbitmq.queue_name("failover_buffer")
    rabbitmq.exchanges.append(name)
    with contextlib.closing(failover.SimpleBuffer(name)) as buffer:
        buffer.put({"Hello": "World"}, headers={"k1": "v1"})
        assert buffer.get(timeout=5).headers == {"k1": "v1"}


# -- Redis only: deliberate differences ---------------------------------------------------------


@pytest.mark.redis
def test_wrong_credentials_raise_our_authentication_error(redis_url: str) -> None:
    redis = pytest.importorskip("redis")
    conn = Connection(
        f"redis://wrong_redis_user:wrong_redis_password@{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
    )

    with pytest.raises(AuthenticationError) as failed:  # never retried
        conn.connect()

    # kombu lets redis-py's class escape; here it is the cause. redis-py files
    # AuthenticationError under its ConnectionError, which retry loops catch.
    assert isinstance(failed.value.__cause__, redis.exceptions.AuthenticationError)
    assert not isinstance(failed.value, redis.exceptions.ConnectionError)


@pytest.mark.redis
@pytest.mark.parametrize("peer", ["refusing", "silent"])
def test_an_unreachable_redis_raises_operational_error_caused_by_redis_py(
    redis_url: str, peer: str
) -> None:
    redis = pytest.importorskip("redis")
    with contextlib.ExitStack() as stack:
        port = free_port() if peer == "refusing" else stack.enter_context(SilentServer()).port
        conn = Connection(
            f"redis://127.0.0.1:{port}/{REDIS_DB}",
            connect_timeout=0.5,
            transport_options={"max_retries": 0},
        )
        with pytest.raises(OperationalError) as failed:
            conn.connection  # noqa: B018

    translated = failed.value.__cause__
    assert isinstance(translated, conn.connection_errors)
    driver = redis.exceptions.ConnectionError if peer == "refusing" else redis.TimeoutError
    assert isinstance(translated.__cause__, driver)


def test_either_prefix_option_puts_every_key_under_the_prefix(redis_broker: Broker) -> None:
    redis = pytest.importorskip("redis")
    conn = redis_broker.connect()
    name = redis_broker.queue_name("prefixed")
    with conn, contextlib.closing(conn.SimpleQueue(name)) as queue:
        queue.put("x")
        client = redis.Redis(REDIS_HOST, REDIS_PORT, db=REDIS_DB)
        keys = list(client.scan_iter(match=f"{redis_broker.key_prefix}*"))
        client.close()
        assert keys


@pytest.mark.redis
def test_the_redis_transport_names_its_driver_version(redis_url: str) -> None:
    redis = pytest.importorskip("redis")
    assert Connection(redis_url).transport.driver_version() == redis.__version__


@pytest.mark.parametrize(("max_batch", "per_call"), [(None, [3]), (1, [1, 1, 1])])
def test_redis_drain_events_dispatches_what_one_delivery_call_took(
    redis_broker: Broker, max_batch: int | None, per_call: list[int]
) -> None:
    options = dict(redis_broker.options)
    if max_batch is not None:
        options["max_batch"] = max_batch  # kombu's one delivery per call
    received: list[Any] = []
    with Connection(redis_broker.url, transport_options=options) as conn:
        name = redis_broker.queue_name("batch")
        queue = Queue(name, routing_key=name)
        with conn.channel() as channel:
            producer = Producer(channel)
            for n in range(3):
                producer.publish(n, routing_key=name, declare=[queue])
        counts = []
        with Consumer(conn, [queue], callbacks=[lambda b, m: (received.append(b), m.ack())]):
            while len(received) < 3:
                before = len(received)
                conn.drain_events(timeout=5)
                counts.append(len(received) - before)

    assert counts == per_call
    assert received == [0, 1, 2]
