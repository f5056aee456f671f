"""The asyncio transports' bookkeeping, without a broker: reply lines, consumers, time slices."""

from __future__ import annotations

from typing import Any

import pytest
from amqp import spec

from transports.amqp.aio.consumers import Subscriptions
from transports.amqp.aio.replies import ReplyLine
from transports.base_aio import TimeSlice

pytestmark = pytest.mark.asyncio

DECLARE_OK = frozenset({spec.Queue.DeclareOk})


async def test_a_reply_for_a_cancelled_request_is_consumed_and_later_replies_still_match() -> None:
    line = ReplyLine()
    orphans: list[Any] = []
    first = line.expect(DECLARE_OK, lambda sig, args, msg: orphans.append(args))
    second = line.expect(DECLARE_OK)
    first.cancel()  # its caller went away; the broker will still answer it
    assert line.settle(spec.Queue.DeclareOk, ("q1", 0, 0), None)
    assert orphans == [("q1", 0, 0)]
    assert line.settle(spec.Queue.DeclareOk, ("q2", 0, 0), None)
    assert second.result() == (spec.Queue.DeclareOk, ("q2", 0, 0), None)
    assert not line.settle(spec.Queue.DeclareOk, ("q3", 0, 0), None)  # nobody asked
    assert len(line) == 0


async def test_failing_the_line_tells_whether_anyone_was_waiting() -> None:
    line = ReplyLine()
    assert not line.fail(lambda: RuntimeError("gone"))
    waiting = line.expect(DECLARE_OK)
    assert line.fail(lambda: RuntimeError("gone"))
    with pytest.raises(RuntimeError, match="gone"):
        waiting.result()


async def test_deliveries_after_a_cancel_are_given_back_unless_already_settled() -> None:
    subs = Subscriptions()
    got: list[str] = []
    cancelled: list[str] = []
    subs.add("t1", got.append, cancelled.append, no_ack=False)
    subs.add("t2", got.append, None, no_ack=True)
    assert subs.deliver("t1", "m1") and got == ["m1"]
    subs.stop("t1")
    subs.stop("t2")
    assert not subs.deliver("t1", "m2")  # give it back
    assert subs.deliver("t2", "m3")  # no_ack: nothing to give back
    assert not subs.deliver("unknown", "m4")
    subs.add("t3", got.append, cancelled.append, no_ack=False)
    subs.cancelled_by_broker("t3")
    assert cancelled == ["t3"] and got == ["m1"]


async def test_a_time_slice_is_due_once_per_slice() -> None:
    now = [0.0]
    time_slice = TimeSlice(0.005, clock=lambda: now[0])
    assert not time_slice.due()
    now[0] = 0.006
    assert time_slice.due()
    assert not time_slice.due()  # a new slice began
    now[0] = 0.012
    assert time_slice.due()
