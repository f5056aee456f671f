"""publish(retry=True) retries a nack within the policy; without retry a nack is raised at once.

Either way a producer leaves a nacked channel of its own behind and publishes
on a new one; a channel it was given it keeps.

The channel here confirms like RabbitMQ's (tags settled by the broker, later),
but answers each publish with the next outcome of a script, as soon as the
publish is written: the retry loop is the real one (``Connection.ensure``),
with its sleeps recorded instead of slept.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from broker import Connection, Producer
from broker.connection.recovery import Topology
from broker.entities.owner import ChannelOwner
from broker.errors import MessageNacked, OperationalError
from broker.retry.policy import Constant, RetryPolicy
from transports._shared.unbuffered import UNBUFFERED


class ScriptedChannel:
    """A confirm-mode channel whose broker answers publish N with ``outcomes[N]``."""

    channel_id = 3
    owner = None
    is_open = True
    confirms_synchronously = False

    def __init__(self, *outcomes: str) -> None:
        self.outcomes = list(outcomes)
        self.confirm_listener: Any = None
        self.on_return: Any = None
        self.published: list[bytes] = []

    def confirm_select(self, nowait: bool = False) -> None:
        pass

    def close(self) -> None:
        self.is_open = False

    def buffered_writes(self) -> Any:
        return UNBUFFERED

    def prepare_message(self, body: bytes, **properties: Any) -> Any:
        return body

    def basic_publish(self, msg: Any, *args: Any) -> None:
        self.published.append(msg)
        tag = len(self.published)
        outcome = self.outcomes.pop(0) if self.outcomes else "ack"
        settle = (
            self.confirm_listener.on_nack if outcome == "nack" else self.confirm_listener.on_ack
        )
        settle(tag, False)


@pytest.fixture
def conn() -> Iterator[Connection]:
    connection = Connection("memory://")
    yield connection
    connection.close()


def policy(sleeps: list[float], **changes: Any) -> RetryPolicy:
    return RetryPolicy(backoff=Constant(0.25), sleep=sleeps.append, **changes)


def test_a_nack_is_published_again_after_the_backoff(conn: Connection) -> None:
    channel = ScriptedChannel("nack", "nack", "ack")
    producer = Producer(channel, confirm_publish=True, connection=conn)
    sleeps: list[float] = []
    seen: list[BaseException] = []
    producer.publish(
        b"m",
        retry=True,
        retry_policy={"policy": policy(sleeps), "errback": lambda exc, delay: seen.append(exc)},
    )
    assert channel.published == [b"m", b"m", b"m"]
    assert sleeps == [0.25, 0.25]
    assert [type(exc) for exc in seen] == [MessageNacked, MessageNacked]


def test_nacks_beyond_the_budget_raise_operational_error_from_the_nack(conn: Connection) -> None:
    channel = ScriptedChannel("nack", "nack", "nack", "ack")
    producer = Producer(channel, confirm_publish=True, connection=conn)
    sleeps: list[float] = []
    with pytest.raises(OperationalError, match=r"after 3 attempts.*MessageNacked") as caught:
        producer.publish(b"m", retry=True, retry_policy={"policy": policy(sleeps, max_retries=2)})
    assert isinstance(caught.value.__cause__, MessageNacked)
    assert len(channel.published) == 3 and sleeps == [0.25, 0.25]
    producer.publish(b"next")  # the channel's confirm count is still right
    assert len(channel.published) == 4


def test_with_the_default_policy_too(conn: Connection) -> None:
    channel = ScriptedChannel("nack")  # then acks, after DEFAULT_RETRY_POLICY's first 0.5 s pause
    Producer(channel, confirm_publish=True, connection=conn).publish(b"m", retry=True)
    assert len(channel.published) == 2


def test_without_retry_a_nack_is_raised_at_once(conn: Connection) -> None:
    channel = ScriptedChannel("nack")
    producer = Producer(channel, confirm_publish=True, connection=conn)
    with pytest.raises(MessageNacked, match="nacked message 1"):
        producer.publish(b"m")
    assert channel.published == [b"m"]
    producer.publish(b"again")
    assert channel.published == [b"m", b"again"]


# -- after a nack, a producer publishes on a new channel of its own ---------------------------


class ScriptedOwner(ChannelOwner):
    """Opens a :class:`ScriptedChannel` per script; retry loops are a memory Connection's."""

    def __init__(self, conn: Connection, *scripts: tuple[str, ...]) -> None:
        self.conn, self.scripts = conn, list(scripts)
        self.opened: list[ScriptedChannel] = []
        self._declared: set[Any] = set()
        self._topology = Topology()

    def channel(self) -> Any:
        channel = ScriptedChannel(*(self.scripts.pop(0) if self.scripts else ()))
        self.opened.append(channel)
        return channel

    @property
    def default_channel(self) -> Any:
        raise AssertionError("a confirming producer publishes on channels of its own")

    @property
    def declared_entities(self) -> set[Any]:
        return self._declared

    @property
    def topology(self) -> Topology:
        return self._topology

    @property
    def connected(self) -> bool:
        return True

    @property
    def transport_options(self) -> Mapping[str, Any]:
        return {}

    @property
    def is_blocked(self) -> bool:
        return False

    def drain_events(self, timeout: float | None = None) -> None:
        raise AssertionError("scripted channels settle every publish as it is written")

    def ensure(self, obj: Any, fun: Any, *args: Any, **kwargs: Any) -> Any:
        return self.conn.ensure(obj, fun, *args, **kwargs)


def test_a_nacked_channel_is_replaced_before_the_retry(conn: Connection) -> None:
    # RabbitMQ 3.10 nacks every later publish of a channel whose first publish to a
    # quorum queue fell in a leader election; a new channel is accepted at once.
    owner = ScriptedOwner(conn, ("nack", "nack"), ("ack",))
    sleeps: list[float] = []
    Producer(owner, confirm_publish=True).publish(
        b"m", retry=True, retry_policy={"policy": policy(sleeps)}
    )
    assert [channel.published for channel in owner.opened] == [[b"m"], [b"m"]]
    assert [channel.is_open for channel in owner.opened] == [False, True]
    assert sleeps == [0.25]


def test_without_retry_the_next_publish_goes_on_a_new_channel(conn: Connection) -> None:
    owner = ScriptedOwner(conn, ("nack",), ())
    producer = Producer(owner, confirm_publish=True)
    with pytest.raises(MessageNacked):
        producer.publish(b"first")
    producer.publish(b"second")
    assert [channel.published for channel in owner.opened] == [[b"first"], [b"second"]]


def test_a_batch_with_nacks_leaves_its_channel_behind(conn: Connection) -> None:
    owner = ScriptedOwner(conn, ("ack", "nack", "ack"), ())
    producer = Producer(owner)
    with pytest.raises(MessageNacked, match="nacked 1 of 3"), producer.confirms(timeout=1):
        for body in (b"1", b"2", b"3"):
            producer.publish(body, message_id=body.decode())
    with producer.confirms(timeout=1) as batch:
        producer.publish(b"4")
    assert batch.confirmed == 1
    assert [channel.published for channel in owner.opened] == [[b"1", b"2", b"3"], [b"4"]]
