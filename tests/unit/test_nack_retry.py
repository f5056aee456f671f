"""publish(retry=True) retries a nack within the policy; without retry a nack is raised at once.

The channel here confirms like RabbitMQ's (tags settled by the broker, later),
but answers each publish with the next outcome of a script, as soon as the
publish is written: the retry loop is the real one (``Connection.ensure``),
with its sleeps recorded instead of slept.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from broker import Connection, Producer
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
