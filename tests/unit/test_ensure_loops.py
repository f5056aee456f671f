"""The retry loops against a scripted Reconnectable: failover, rounds, revival; no I/O."""

from __future__ import annotations

from typing import Any

import pytest

from broker.errors import (
    AuthenticationError,
    OperationalError,
    RecoverableChannelError,
    RecoverableConnectionError,
)
from broker.retry.ensure import autoretried, connect_with_retry, ensured
from broker.retry.policy import Constant, RetryPolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class ScriptedLink:
    """A Reconnectable over named hosts; the hosts in ``down`` refuse connections."""

    def __init__(self, hosts: list[str], down: set[str]) -> None:
        self.hosts = hosts
        self.down = down
        self.index = 0
        self.tried: list[tuple[str, float | None]] = []
        self.lost: list[BaseException] = []
        self.pending_runs = 0
        self.channel_asked: list[Any] = []

    @property
    def alternate_count(self) -> int:
        return len(self.hosts)

    def describe_alternates(self) -> str:
        return ";".join(self.hosts)

    def as_uri(self, include_password: bool = False, mask: str = "**") -> str:
        return self.hosts[self.index]

    def connect_once(self, timeout: float | None = None) -> None:
        host = self.hosts[self.index]
        self.tried.append((host, timeout))
        if host in self.down:
            raise RecoverableConnectionError(f"{host} refused")

    def maybe_switch_next(self) -> None:
        self.index = (self.index + 1) % len(self.hosts)

    def connection_lost(self, exc: BaseException) -> None:
        self.lost.append(exc)
        self.maybe_switch_next()

    def run_pending_callbacks(self) -> None:
        self.pending_runs += 1

    @property
    def default_channel(self) -> Any:
        return f"default@{self.hosts[self.index]}"

    def replacement_channel(self, old: Any) -> Any:
        self.channel_asked.append(old)
        return "fresh"


class Bound:
    def __init__(self, channel: Any = None) -> None:
        self.channel = channel
        self.revived: list[Any] = []

    def revive(self, channel: Any) -> None:
        self.revived.append(channel)
        self.channel = channel


def policy(clock: FakeClock, **kw: Any) -> RetryPolicy:
    return RetryPolicy(clock=clock, sleep=clock.sleep, **kw)


def test_failover_within_a_round_does_not_sleep() -> None:
    clock = FakeClock()
    link = ScriptedLink(["a", "b", "c"], down={"a", "b"})
    connect_with_retry(link, policy(clock, backoff=Constant(1), timeout=10).begin())
    assert [host for host, _ in link.tried] == ["a", "b", "c"]
    assert clock.slept == []


def test_rounds_back_off_and_the_budget_names_every_alternate() -> None:
    clock = FakeClock()
    link = ScriptedLink(["a", "b", "c"], down={"a", "b", "c"})
    with pytest.raises(OperationalError, match="could not connect to a;b;c after 6 attempts"):
        connect_with_retry(link, policy(clock, max_retries=5, backoff=Constant(1)).begin())
    assert [host for host, _ in link.tried] == ["a", "b", "c", "a", "b", "c"]
    assert clock.slept == [1]


def test_each_attempt_gets_the_time_left() -> None:
    clock = FakeClock()
    link = ScriptedLink(["a", "b"], down={"a"})
    state = policy(clock, backoff=Constant(1), timeout=10).begin()
    clock.now += 3
    connect_with_retry(link, state)
    assert link.tried == [("a", 7.0), ("b", 7.0)]


def test_authentication_errors_are_not_retried() -> None:
    class Refusing(ScriptedLink):
        def connect_once(self, timeout: float | None = None) -> None:
            raise AuthenticationError("bad password")

    link = Refusing(["a", "b"], down=set())
    with pytest.raises(AuthenticationError):
        connect_with_retry(link, policy(FakeClock()).begin())
    assert link.index == 0


def test_a_connection_error_drops_the_link_reconnects_and_revives() -> None:
    clock = FakeClock()
    link = ScriptedLink(["a", "b"], down=set())
    obj, calls = Bound("default@a"), []

    def publish() -> str:
        calls.append(link.hosts[link.index])
        if len(calls) == 1:
            raise RecoverableConnectionError("reset")
        return "sent"

    wrapped = ensured(link, obj, publish, policy(clock, backoff=Constant(1), timeout=None))
    assert wrapped() == "sent"
    assert calls == ["a", "b"] and len(link.lost) == 1
    assert obj.revived == ["default@b"] and clock.slept == []
    assert link.pending_runs == 2  # before each call


def test_a_channel_error_backs_off_and_replaces_the_objects_channel() -> None:
    clock = FakeClock()
    link = ScriptedLink(["a"], down=set())
    obj = Bound("mine")
    errors = [RecoverableChannelError("405 locked")]

    def declare() -> None:
        if errors:
            raise errors.pop()

    ensured(link, obj, declare, policy(clock, backoff=Constant(0.5), timeout=None))()
    assert link.channel_asked == ["mine"] and obj.revived == ["fresh"]
    assert clock.slept == [0.5] and link.lost == []


def test_autoretried_passes_the_channel_and_follows_a_revival() -> None:
    link = ScriptedLink(["a", "b"], down=set())
    holder, call = autoretried(link, lambda n, channel: (n, channel), None)
    assert call(1) == ((1, "default@a"), "default@a")
    holder.revive("default@b")
    assert call(2) == ((2, "default@b"), "default@b")
