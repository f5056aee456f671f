"""Exchanges, queues and bindings: kombu-compatible shape, declaring, caching, recording."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from broker import Connection
from broker.connection.recovery import ExchangeBindingRecord
from broker.entities.queue import Exchange, Queue, binding, maybe_declare
from broker.errors import ConfigurationError, NotFound
from transports.memory.transport import inspect, reset


@pytest.fixture
def conn() -> Iterator[Connection]:
    connection = Connection("memory://")
    yield connection
    connection.close()


# -- shape (no I/O) ----------------------------------------------------------------


def test_kombu_style_queue_reads_the_same():
    queue = Queue("video", Exchange("media", "direct"), "video")
    assert queue.name == "video"
    assert queue.exchange is not None
    assert (queue.exchange.name, queue.exchange.type) == ("media", "direct")
    assert queue.routing_key == "video"
    assert (queue.durable, queue.exclusive, queue.auto_delete) == (True, False, False)


def test_exchange_defaults_match_kombu():
    ex = Exchange("x")
    assert (ex.type, ex.durable, ex.auto_delete, ex.delivery_mode) == ("direct", True, False, None)
    assert ex.default_delivery_mode == 2
    assert Exchange("t", durable=False).default_delivery_mode == 1
    assert Exchange("p", durable=False, delivery_mode="persistent").default_delivery_mode == 2


def test_exchange_name_as_string_and_default_exchange():
    assert Queue("q", "logs").exchange == Exchange("logs")
    default = Queue("q").exchange
    assert default is not None and default.name == ""


def test_exclusive_implies_auto_delete():
    assert Queue("q", exclusive=True).auto_delete is True


def test_x_arguments_from_keywords_in_kombu_units():
    queue = Queue(
        "q",
        message_ttl=1.5,
        expires=60,
        max_length=10,
        max_length_bytes=1000,
        max_priority=9,
        queue_arguments={"x-queue-mode": "lazy"},
    )
    assert queue.declare_arguments == {
        "x-queue-mode": "lazy",
        "x-message-ttl": 1500,
        "x-expires": 60000,
        "x-max-length": 10,
        "x-max-length-bytes": 1000,
        "x-max-priority": 9,
    }
    assert Queue("plain").declare_arguments is None


def test_queue_with_a_list_of_bindings():
    b1 = binding(Exchange("a", "topic"), "x.*")
    b2 = Exchange("b", "fanout").binding()
    queue = Queue("q", [b1, b2])
    assert queue.exchange is None
    assert queue.bindings == [b1, b2]


def test_bad_delivery_mode_and_names_are_configuration_errors():
    with pytest.raises(ConfigurationError, match="delivery_mode must be 1, 2"):
        Exchange("x", delivery_mode="sometimes")
    with pytest.raises(ConfigurationError, match="exchange type"):
        Exchange("x", type="")
    with pytest.raises(ConfigurationError, match="queue name must be a str"):
        Queue(42)  # type: ignore[arg-type]


def test_equality_and_hash_follow_the_definition():
    assert Exchange("x") == Exchange("x")
    assert Exchange("x") != Exchange("x", "fanout")
    assert Queue("q", Exchange("x"), "k") == Queue("q", Exchange("x"), "k")
    assert Queue("q", Exchange("x"), "k") != Queue("q", Exchange("x"), "other")
    assert len({Queue("q"), Queue("q")}) == 1


def test_unbound_entity_says_how_to_bind_it():
    with pytest.raises(ConfigurationError, match=r"not bound to a channel"):
        Queue("q").declare()


def test_repr_shows_name_exchange_and_binding_state(conn):
    queue = Queue("q", Exchange("x", "topic"), "a.#")
    assert repr(queue) == "<Queue 'q' -> 'x'(topic) -> 'a.#'>"
    bound = queue(conn)
    assert "bound to chan:" in repr(bound)
    assert repr(Exchange("x", "fanout")) == "<Exchange 'x'(fanout)>"


# -- declaring on memory:// --------------------------------------------------------


def test_calling_an_entity_returns_a_bound_copy(conn):
    queue = Queue("q")
    bound = queue(conn)
    assert bound is not queue
    assert bound.is_bound and not queue.is_bound
    assert bound.channel is conn.default_channel


def test_declare_creates_exchange_queue_and_binding(conn):
    queue = Queue("q1", Exchange("ex1", "topic"), "a.*")(conn)
    assert queue.declare() == "q1"
    queues, exchanges = inspect()
    assert "q1" in queues and queues["q1"].durable
    assert exchanges["ex1"].type == "topic"
    assert ("q1", "a.*", {}) in exchanges["ex1"].bindings


def test_declarations_are_cached_per_connection(conn):
    queue = Queue("q2", Exchange("ex2"), "k")
    assert maybe_declare(queue, conn) is True
    assert maybe_declare(queue, conn) is False
    assert queue.declaration_key in conn.declared_entities
    # A reconnect forgets the cache (the broker may have lost them).
    conn.collect()
    assert not conn.declared_entities


def test_auto_delete_entities_are_never_cached(conn):
    queue = Queue("q3", auto_delete=True)
    assert maybe_declare(queue, conn) is True
    assert maybe_declare(queue, conn) is True


def test_declarations_are_recorded_in_the_topology(conn):
    queue = Queue("q4", Exchange("ex4"), "k", bindings=[binding(Exchange("ex4b", "fanout"))])
    maybe_declare(queue, conn)
    topo = conn.topology
    assert [e.name for e in topo.exchanges] == ["ex4", "ex4b"]
    assert [q.name for q in topo.queues] == ["q4"]
    assert [(b.queue.name, b.exchange, b.routing_key) for b in topo.bindings] == [
        ("q4", "ex4", "k"),
        ("q4", "ex4b", ""),
    ]


def test_no_declare_and_recover_false_stay_out_of_the_record(conn):
    conn.default_channel.queue_declare("existing")
    assert maybe_declare(Queue("existing", no_declare=True), conn) is False
    Queue("private", recover=False)(conn).declare()
    assert conn.topology.queues == []
    assert "private" in inspect()[0]


def test_server_named_queue_gets_its_name_written_back(conn):
    queue = Queue("", exclusive=True)(conn)
    name = queue.declare()
    assert name.startswith("amq.gen-")
    assert queue.name == name and queue.server_named
    assert conn.topology.queues == [queue]


def test_passive_declare_checks_existence_without_recording(conn):
    queue = Queue("nope")(conn)
    with pytest.raises(NotFound):
        queue.queue_declare(passive=True)
    assert conn.topology.queues == []


def test_bind_to_and_unbind_from_update_broker_and_record(conn):
    Exchange("ex5", "fanout")(conn).declare()
    queue = Queue("q5")(conn)
    queue.declare()
    queue.bind_to("ex5")
    assert ("q5", "", {}) in inspect()[1]["ex5"].bindings
    assert [b.exchange for b in conn.topology.bindings] == ["ex5"]
    queue.unbind_from("ex5")
    assert inspect()[1]["ex5"].bindings == ()
    assert conn.topology.bindings == []


def test_delete_and_purge(conn):
    queue = Queue("q6", Exchange("ex6"), "k")(conn)
    queue.declare()
    ch = conn.default_channel
    for _ in range(3):
        ch.basic_publish(ch.prepare_message(b"x"), "ex6", "k")
    assert queue.purge() == 3
    queue.delete()
    assert "q6" not in inspect()[0]
    assert conn.topology.queues == []
    queue.exchange.delete()
    assert "ex6" not in inspect()[1]
    assert conn.topology.exchanges == []


def test_queue_get_returns_a_message_or_none(conn):
    queue = Queue("q7")(conn)
    queue.declare()
    assert queue.get() is None
    conn.default_channel.basic_publish(
        conn.default_channel.prepare_message(b'{"a": 1}', content_type="application/json"),
        "",
        "q7",
    )
    message = queue.get()
    assert message is not None
    assert message.payload == {"a": 1}
    message.ack()


# -- exchange-to-exchange bindings ---------------------------------------------------


def publish(conn: Connection, exchange: str, routing_key: str, body: bytes) -> None:
    channel = conn.default_channel
    channel.basic_publish(channel.prepare_message(body), exchange, routing_key)


def test_exchange_bind_to_routes_through_the_destination_and_is_recorded(conn):
    source = Exchange("orders", "topic")(conn)
    source.declare()
    destination = Exchange("audit", "fanout")
    queue = Queue("audit-log", destination)(conn)
    queue.declare()
    queue.exchange.bind_to(source, "order.#")
    publish(conn, "orders", "order.created", b"routed")
    publish(conn, "orders", "user.created", b"filtered by the source")
    assert [m.body for m in iter(queue.get, None)] == [b"routed"]
    assert conn.topology.exchange_bindings == [
        ExchangeBindingRecord("audit", "orders", "order.#", None)
    ]

    queue.exchange.unbind_from("orders", "order.#")  # by name this time
    publish(conn, "orders", "order.created", b"no longer routed")
    assert queue.get() is None
    assert conn.topology.exchange_bindings == []


def test_exchange_bind_to_refuses_bad_input_before_asking_the_broker(conn):
    exchange = Exchange("x", "direct")(conn)
    exchange.declare()
    with pytest.raises(ConfigurationError, match=r"Exchange or an exchange name.*42"):
        exchange.bind_to(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="default exchange"):
        exchange.bind_to("")
    with pytest.raises(ConfigurationError, match="default exchange"):
        Exchange("")(conn).bind_to(exchange)
    assert conn.default_channel.is_open
    assert conn.topology.exchange_bindings == []


def test_exchange_bind_to_a_missing_source_raises_not_found_and_records_nothing(conn):
    exchange = Exchange("x", "direct")(conn)
    exchange.declare()
    with pytest.raises(NotFound):
        exchange.bind_to("no-such-exchange")
    assert conn.topology.exchange_bindings == []


def test_deleting_an_exchange_forgets_its_exchange_bindings(conn):
    a, b, c = (Exchange(name, "fanout")(conn) for name in "abc")
    for exchange in (a, b, c):
        exchange.declare()
    b.bind_to(a)
    c.bind_to(b)
    unrecovered = Exchange("d", "fanout", recover=False)(conn)
    unrecovered.declare()
    unrecovered.bind_to(a)
    assert [(r.source, r.destination) for r in conn.topology.exchange_bindings] == [
        ("a", "b"),
        ("b", "c"),
    ]
    assert "exchange_bindings=2" in repr(conn.topology)
    b.delete()  # the source of one binding, the destination of the other
    assert conn.topology.exchange_bindings == []


def test_replay_restores_exchange_bindings_after_a_reconnect(conn, caplog):
    source = Exchange("events", "direct", auto_delete=True)(conn)
    source.declare()
    queue = Queue("billing", Exchange("billing-in", "fanout", auto_delete=True))(conn)
    queue.declare()
    queue.exchange.bind_to(source, "invoice")

    conn.collect()
    reset()  # the broker lost everything, like a restarted node
    conn.connect()  # exchanges, exchange bindings, queues, queue bindings

    assert not [r for r in caplog.records if r.name == "broker.topology"]
    assert {"events", "billing-in"} <= inspect()[1].keys()
    publish(conn, "events", "invoice", b"restored")
    publish(conn, "events", "refund", b"not bound")
    assert [m.body for m in iter(Queue("billing")(conn).get, None)] == [b"restored"]
