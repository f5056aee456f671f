"""The Connection façade: laziness, configuration errors, secrets, lifecycle (memory://)."""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import pytest

from broker import Connection
from broker.errors import (
    ConfigurationError,
    MessageNacked,
    OperationalError,
    RecoverableChannelError,
    RecoverableConnectionError,
    TransportNotFound,
)
from broker.retry.policy import DEFAULT_RETRY_POLICY, Constant, Linear, RetryPolicy

SECRET = "s3cr3t-Pa55"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything resolves a name or opens a socket."""

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"network I/O attempted: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(socket.socket, "connect", forbidden)


def test_construction_performs_no_io(no_network: None) -> None:
    conn = Connection(
        f"amqp://user:{SECRET}@unroutable.invalid:5672//;amqps://other.invalid//",
        heartbeat=10,
        connect_timeout=1,
    )
    assert not conn.connected
    assert conn.is_closed and not conn.is_open
    assert conn.host == "unroutable.invalid:5672"
    repr(conn), conn.info(), conn.identity, conn.clone()


def test_defaults_target_local_guest() -> None:
    conn = Connection()
    assert conn.as_uri() == "amqp://guest:**@localhost:5672//"
    assert conn.as_uri(include_password=True) == "amqp://guest:guest@localhost:5672//"
    assert conn.transport.name == "amqp"


def test_every_alternate_gets_its_own_scheme_defaults() -> None:
    conn = Connection("amqp://u:p@a:1234/vh;amqps://b", failover_strategy="round-robin")
    assert conn.as_uri() == "amqp://u:**@a:1234/vh"
    conn.maybe_switch_next()
    assert conn.as_uri() == "amqps://guest:**@b:5671//"
    assert conn.host == "b:5671"
    conn.maybe_switch_next()
    assert conn.host == "a:1234"


def test_keyword_defaults_fill_what_urls_leave_out() -> None:
    conn = Connection("amqp://h1", userid="bob", password="pw", virtual_host="v", port=5700)
    assert conn.as_uri(include_password=True) == "amqp://bob:pw@h1:5700/v"


def test_bare_hostname_and_lists_are_accepted() -> None:
    assert Connection("rabbit.local").host == "rabbit.local:5672"
    conn = Connection(["amqp://a//", "amqp://b//"], alternates=["amqp://c//"])
    assert conn.alternate_count == 3


def test_memory_transport_by_keyword() -> None:
    conn = Connection(transport="memory")
    assert conn.transport.name == "memory"
    assert not conn.supports_heartbeats


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"heartbaet": 3}, "'heartbaet' (did you mean 'heartbeat'?)"),
        ({"insist": True}, "'insist'"),
        ({"port": "5672"}, "port"),
        ({"port": 70000}, "port"),
        ({"heartbeat": -1}, "heartbeat"),
        ({"heartbeat": "fast"}, "heartbeat"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"ssl": 3}, "ssl"),
        ({"failover_strategy": "random"}, "failover_strategy"),
        ({"transport_options": [("a", 1)]}, "transport_options"),
        ({"blocked_connection_timeout": 0}, "blocked_connection_timeout"),
        ({"hostname": 42}, "hostname"),
        ({"hostname": "amqp://h:notaport//"}, "port"),
        ({"hostname": "amqp://h//?hearbeat=2"}, "hearbeat"),
        ({"hostname": "amqp://h//?heartbeat=soon"}, "heartbeat"),
        ({"hostname": "amqp://a//;;amqp://b//"}, ""),
    ],
)
def test_bad_configuration_names_the_culprit(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Connection(**kwargs)
    assert needle in str(info.value)


def test_unknown_transport_suggests_the_closest() -> None:
    with pytest.raises(TransportNotFound, match="did you mean 'amqp'"):
        Connection(transport="amqpp")
    with pytest.raises(TransportNotFound, match="memory"):
        Connection("memroy://")


def test_caller_transport_options_are_never_mutated() -> None:
    options = {"confirm_publish": True}
    conn = Connection("memory://", transport_options=options)
    with pytest.raises(TypeError):
        conn.transport_options["x"] = 1  # type: ignore[index]
    conn.clone(heartbeat=0)
    assert options == {"confirm_publish": True}


def test_password_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    conn = Connection(f"amqp://user:{SECRET}@127.0.0.1:1//", connect_timeout=0.5)
    texts = [repr(conn), str(conn), conn.as_uri(), str(conn.info()), str(conn.identity)]
    with pytest.raises(OperationalError) as info:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_max=0)
    texts += [str(info.value), repr(info.value), str(info.value.__cause__)]
    texts += [r.getMessage() for r in caplog.records]
    assert all(SECRET not in t for t in texts)
    assert any("user:**@127.0.0.1:1" in t for t in texts)


def test_identity_equal_for_equal_configuration() -> None:
    a = Connection("amqp://u:p@h//", heartbeat=2)
    assert a.identity == Connection("amqp://u:p@h//", heartbeat=2).identity
    assert a.identity == a.clone().identity
    assert a.identity != Connection("amqp://u:other@h//", heartbeat=2).identity
    assert a.identity != a.clone(heartbeat=3).identity
    hash(a.identity)


def test_lazy_connect_channel_and_round_trip() -> None:
    opened: list[Connection] = []
    with Connection("memory://", on_connect=opened.append) as conn:
        assert not conn.connected
        ch = conn.default_channel
        assert conn.connected and conn.is_open and opened == [conn]
        ch.queue_declare(queue="q1")
        ch.basic_publish(ch.prepare_message(b"hi"), exchange="", routing_key="q1")
        msg = ch.basic_get(queue="q1", no_ack=True)
        assert msg is not None and msg.body == b"hi"
        assert conn.default_channel is ch
    assert conn.is_closed


def test_channel_is_a_context_manager() -> None:
    conn = Connection("memory://")
    with conn.channel() as ch:
        assert ch.is_open
    assert not ch.is_open
    conn.close()


def test_close_twice_and_reconnect_after_close() -> None:
    closes: list[BaseException | None] = []
    conn = Connection("memory://", on_close=lambda c, exc: closes.append(exc))
    conn.connect()
    conn.close()
    conn.close()
    assert closes == [None]
    conn.connect()
    assert conn.connected
    conn.collect()
    conn.collect()
    assert not conn.connected


def test_on_open_and_on_connect_run_on_every_connect() -> None:
    events: list[str] = []
    conn = Connection(
        "memory://",
        on_open=lambda c: events.append("open"),
        on_connect=[lambda c: events.append("connect")],
    )
    conn.connect()
    conn.collect()
    conn.connect()
    assert events == ["open", "connect", "open", "connect"]


def test_add_callback_threadsafe_runs_on_the_owner_thread() -> None:
    conn = Connection("memory://")
    ch = conn.default_channel
    ch.queue_declare(queue="cb")
    ran_on: list[int] = []

    def worker() -> None:
        conn.add_callback_threadsafe(lambda: ran_on.append(threading.get_ident()))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert ran_on == []
    with pytest.raises(TimeoutError):
        conn.drain_events(timeout=0.3)
    assert ran_on == [threading.get_ident()]
    conn.close()


def test_drain_events_times_out_with_socket_timeout() -> None:
    conn = Connection("memory://")
    with pytest.raises(socket.timeout):
        conn.drain_events(timeout=0.1)
    conn.close()


def fast_policy(**kw: Any) -> RetryPolicy:
    slept: list[float] = []
    return RetryPolicy(backoff=Constant(0.5), timeout=None, sleep=slept.append, **kw)


class Revivable:
    def __init__(self) -> None:
        self.revived: list[Any] = []

    def revive(self, channel: Any) -> None:
        self.revived.append(channel)


def test_ensure_retries_channel_errors_on_a_fresh_channel() -> None:
    conn = Connection("memory://")
    obj, calls, errbacks = Revivable(), [], []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RecoverableChannelError("resource locked", reply_code=405)
        return "ok"

    ensured = conn.ensure(
        obj, flaky, errback=lambda e, i: errbacks.append(i), policy=fast_policy(max_retries=5)
    )
    assert ensured() == "ok"
    assert len(calls) == 3 and errbacks == [0.5, 0.5] and len(obj.revived) == 2
    conn.close()


def test_ensure_reconnects_after_connection_errors_and_revives() -> None:
    conn = Connection("memory://")
    conn.connect()
    first = conn.transport_connection
    obj, revived = Revivable(), []

    def flaky() -> str:
        if conn.transport_connection is first:
            raise RecoverableConnectionError("socket closed")
        return "ok"

    ensured = conn.ensure(obj, flaky, on_revive=revived.append, policy=fast_policy(max_retries=2))
    assert ensured() == "ok"
    assert conn.transport_connection is not first and conn.connected
    assert obj.revived == revived and len(revived) == 1
    conn.close()


def test_ensure_gives_up_with_operational_error_after_max_retries() -> None:
    conn = Connection("memory://")
    err = RecoverableChannelError("busy")

    def always() -> None:
        raise err

    with pytest.raises(OperationalError) as info:
        conn.ensure(Revivable(), always, policy=fast_policy(max_retries=2))()
    assert info.value.__cause__ is err
    assert "after 3 attempts" in str(info.value)
    conn.close()


def test_ensure_propagates_irrecoverable_errors_at_once() -> None:
    conn = Connection("memory://")
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("bug")

    with pytest.raises(ValueError):
        conn.ensure(Revivable(), broken, policy=fast_policy(max_retries=5))()
    assert calls == [1]


def test_autoretry_returns_value_and_channel() -> None:
    conn = Connection("memory://")

    def declare(name: str, channel: Any) -> str:
        return channel.queue_declare(queue=name).queue  # type: ignore[no-any-return]

    value, channel = conn.autoretry(declare)("auto-q")
    assert value == "auto-q" and channel is conn.default_channel
    conn.close()


def test_memory_broker_announces_its_capabilities() -> None:
    with Connection("memory://") as conn:
        conn.connect()
        assert conn.publisher_confirms and conn.basic_nack
        assert conn.exchange_exchange_bindings
        assert conn.server_properties["product"] == "brokerpool-memory"


# -- one default retry policy --------------------------------------------------------


@pytest.fixture
def policies_used(monkeypatch: pytest.MonkeyPatch) -> list[RetryPolicy]:
    """Every policy the retry loops are started with (the loops still run)."""
    from broker.retry import ensure

    used: list[RetryPolicy] = []
    connect_with_retry, ensured = ensure.connect_with_retry, ensure.ensured

    def spy_connect(conn: Any, state: Any, **kwargs: Any) -> Any:
        used.append(state.policy)
        return connect_with_retry(conn, state, **kwargs)

    def spy_ensured(conn: Any, obj: Any, fun: Any, policy: RetryPolicy, **kwargs: Any) -> Any:
        used.append(policy)
        return ensured(conn, obj, fun, policy, **kwargs)

    monkeypatch.setattr(ensure, "connect_with_retry", spy_connect)
    monkeypatch.setattr(ensure, "ensured", spy_ensured)
    return used


@pytest.mark.parametrize(
    "entry_point",
    [
        lambda conn: conn.connect(),
        lambda conn: conn.ensure_connection(),
        lambda conn: conn.default_channel,
        lambda conn: conn.channel(),
        lambda conn: conn.ensure(Revivable(), lambda: None)(),
        lambda conn: conn.autoretry(lambda channel: None)(),
        lambda conn: conn.Producer().publish(b"x", routing_key="q", retry=True),
    ],
    ids=["connect", "ensure_connection", "default_channel", "channel", "ensure", "autoretry",
         "publish-retry"],
)  # fmt: skip
def test_every_entry_point_uses_the_one_default_policy(
    request: pytest.FixtureRequest, entry_point: Any, policies_used: list[RetryPolicy]
) -> None:
    with Connection("memory://") as conn:
        entry_point(conn)
    allowed = [DEFAULT_RETRY_POLICY]
    if request.node.callspec.id == "publish-retry":
        # The publish's own loop has the same budget and retries a nack (the
        # broker did not take the message) too; its implicit connect is the default.
        nacks_too = DEFAULT_RETRY_POLICY.replace(on=(*DEFAULT_RETRY_POLICY.on, MessageNacked))
        assert nacks_too in policies_used
        allowed.append(nacks_too)
    assert policies_used and all(p in allowed for p in policies_used)


def test_loose_keywords_override_only_what_they_give(policies_used: list[RetryPolicy]) -> None:
    with Connection("memory://") as conn:
        conn.ensure_connection(max_retries=2)
        conn.ensure(Revivable(), lambda: None, interval_max=7)()
        conn.Producer().publish(b"x", routing_key="q", retry=True, retry_policy={"timeout": 4})
    by_count, by_interval, by_timeout = policies_used
    assert by_count == DEFAULT_RETRY_POLICY.replace(max_retries=2)
    assert by_interval == DEFAULT_RETRY_POLICY.replace(backoff=Linear(0.5, 0.5, 7))
    # publish(retry=True) retries nacks too (see the test above)
    on = (*DEFAULT_RETRY_POLICY.on, MessageNacked)
    assert by_timeout == DEFAULT_RETRY_POLICY.replace(timeout=4, on=on)
