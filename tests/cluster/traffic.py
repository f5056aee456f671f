"""Traffic for the loss tests: publishers and consumers in threads, and a ledger of every message.

Loss is counted the project's way (docs/architecture.rst, "How it is tested"):
each message carries a sequence number (header ``seq``, and ``message_id``);
every publish ends confirmed, failed (nacked, so not taken) or unknown (a
timeout or a broken connection before the confirm); after the faults and the
healing, the consumers stop and every queue is drained. Then every confirmed
message was seen (no loss) and every message seen was confirmed or unknown (no
phantoms), where *seen* is every delivery plus what was left in the queue. Duplicates are allowed
(at-least-once) and explained: a stored copy is first delivered unflagged,
and delivered again only flagged (``redelivered``, or a quorum queue's
``x-delivery-count``), so a message may show at most as many unflagged
copies as it was published times (``publish(retry=True)`` may publish twice).

Each client has a connection of its own, used only by its own thread; the
test thread reads :meth:`Client.node` (``conn.info()['node']``, no I/O).
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import itertools
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from broker import Connection, Consumer, ConsumerLoop, Producer, Queue
from broker.errors import BrokerError, MessageNacked, NotFound
from tests.support.wait import wait_until

__all__ = ["Copy", "Ledger", "Traffic", "Verdict", "drain_queue"]

#: What ``publish(retry=True)`` may spend riding out a node restart (5-8 s) and an election.
RETRY_POLICY: Mapping[str, Any] = {
    "timeout": 30, "interval_start": 0.2, "interval_step": 0.2, "interval_max": 1.0,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Copy:
    """One copy of a message, as a consumer got it or as the final drain found it."""

    seq: int
    redelivered: bool
    delivery_count: int | None
    at: float

    @property
    def flagged(self) -> bool:
        """Whether the broker marked it as delivered before."""
        return self.redelivered or bool(self.delivery_count)


def _copy(message: Any) -> Copy:
    headers = message.properties.get("application_headers") or {}
    count = headers.get("x-delivery-count")
    return Copy(
        seq=int(headers["seq"]),
        redelivered=bool(message.delivery_info.get("redelivered")),
        delivery_count=count if isinstance(count, int) else None,
        at=time.monotonic(),
    )


@dataclass
class Ledger:
    """Every publish's fate and every copy received; safe to use from many threads."""

    confirmed: set[int] = field(default_factory=set)
    failed: set[int] = field(default_factory=set)
    unknown: set[int] = field(default_factory=set)
    #: How many times each message was sent (more than once when a publish was retried).
    sends: collections.Counter[int] = field(default_factory=collections.Counter)
    #: When each confirm was recorded.
    confirmed_at: dict[int, float] = field(default_factory=dict)
    copies: list[Copy] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sent(self, seq: int) -> None:
        with self.lock:
            self.sends[seq] += 1

    def settle(self, seq: int, fate: str) -> None:
        with self.lock:
            getattr(self, fate).add(seq)
            if fate == "confirmed":
                self.confirmed_at[seq] = time.monotonic()

    def received(self, copy: Copy) -> None:
        with self.lock:
            self.copies.append(copy)

    def confirmed_since(self, since: float, seqs: range) -> int:
        with self.lock:
            return sum(1 for seq, at in self.confirmed_at.items() if at > since and seq in seqs)

    def confirm_times(self, seqs: range) -> list[float]:
        """When each message of ``seqs`` was confirmed, in order."""
        with self.lock:
            return sorted(at for seq, at in self.confirmed_at.items() if seq in seqs)


@dataclass(frozen=True)
class Verdict:
    """What the ledger and the final drain add up to."""

    published: int
    confirmed: int
    failed: int
    unknown: int
    seen: int
    lost: list[int]
    phantoms: list[int]
    #: Copies the broker flagged as delivered before (returned by a dead consumer).
    redelivered: int
    duplicates: int
    redelivered_duplicates: int
    republished_duplicates: int
    #: Messages with more unflagged copies than sends: a duplicate nothing explains.
    unexplained: list[int]

    def __str__(self) -> str:
        return (
            f"published {self.published}, confirmed {self.confirmed}, failed {self.failed}, "
            f"unknown {self.unknown}, seen {self.seen} distinct, lost {len(self.lost)}, "
            f"phantoms {len(self.phantoms)}, redelivered {self.redelivered}, "
            f"duplicates {self.duplicates} "
            f"({self.redelivered_duplicates} flagged redelivered, "
            f"{self.republished_duplicates} from republishing), "
            f"unexplained {len(self.unexplained)}"
        )


def verdict(ledger: Ledger, left: Iterable[Copy]) -> Verdict:
    """Add up the ledger and the copies ``left`` in the queues after the consumers stopped."""
    copies = [*ledger.copies, *left]
    by_seq: dict[int, list[Copy]] = collections.defaultdict(list)
    for copy in copies:
        by_seq[copy.seq].append(copy)
    seen = set(by_seq)
    flagged = sum(1 for copy in copies if copy.flagged)
    duplicates = len(copies) - len(seen)
    unexplained = sorted(
        seq
        for seq, found in by_seq.items()
        if sum(not c.flagged for c in found) > max(1, ledger.sends[seq])
    )
    return Verdict(
        published=len(ledger.sends),
        confirmed=len(ledger.confirmed),
        failed=len(ledger.failed),
        unknown=len(ledger.unknown),
        seen=len(seen),
        lost=sorted(ledger.confirmed - seen),
        phantoms=sorted(seen - ledger.confirmed - ledger.unknown),
        redelivered=flagged,
        duplicates=duplicates,
        redelivered_duplicates=min(flagged, duplicates),
        republished_duplicates=duplicates - min(flagged, duplicates),
        unexplained=unexplained,
    )


# -- clients ------------------------------------------------------------------------------


class Client(threading.Thread):
    """A thread with a connection of its own; ``node`` says where it is connected now."""

    def __init__(self, name: str, connect: Callable[[], Connection]) -> None:
        super().__init__(name=name, daemon=True)
        self.conn = connect()
        self.halt = threading.Event()
        self.error: BaseException | None = None

    @property
    def node(self) -> str | None:
        """``host:port`` of the broker the client's connection reached, if connected."""
        node: str | None = self.conn.info()["node"]
        return node

    def run(self) -> None:
        try:
            self.work()
        except BaseException as exc:  # reported by Traffic.stop
            self.error = exc
        finally:
            with contextlib.suppress(BrokerError):
                self.conn.close()

    def work(self) -> None:
        raise NotImplementedError


class ConfirmingPublisher(Client):
    """``publish(retry=True)`` with a confirm per message, one message every ``pace`` seconds."""

    def __init__(
        self, name: str, connect: Callable[[], Connection], queue: Queue, ledger: Ledger,
        seqs: range, pace: float,
    ) -> None:  # fmt: skip
        super().__init__(name, connect)
        self.queue, self.ledger, self.seqs, self.pace = queue, ledger, seqs, pace

    def work(self) -> None:
        producer = Producer(self.conn, confirm_publish=True)
        current = [0]
        policy = {**RETRY_POLICY, "errback": lambda exc, delay: self.ledger.sent(current[0])}
        for seq in self.seqs:
            if self.halt.is_set():
                return
            current[0] = seq
            self.ledger.sent(seq)
            try:
                producer.publish(
                    {"seq": seq}, routing_key=self.queue.name, headers={"seq": seq},
                    message_id=str(seq), declare=[self.queue], retry=True, retry_policy=policy,
                    confirm_timeout=5,
                )  # fmt: skip
            except BrokerError as exc:
                nacked = isinstance(exc, MessageNacked) or isinstance(exc.__cause__, MessageNacked)
                self.ledger.settle(seq, "failed" if nacked else "unknown")
            else:
                self.ledger.settle(seq, "confirmed")
            time.sleep(self.pace)


class PipelinedPublisher(Client):
    """``with producer.confirms():`` batches of ``batch`` messages, one batch every ``pace`` s."""

    def __init__(
        self, name: str, connect: Callable[[], Connection], queue: Queue, ledger: Ledger,
        seqs: range, pace: float, batch: int = 10,
    ) -> None:  # fmt: skip
        super().__init__(name, connect)
        self.queue, self.ledger, self.seqs, self.pace, self.size = queue, ledger, seqs, pace, batch

    def work(self) -> None:
        producer = Producer(self.conn)
        current = [0]
        policy = {**RETRY_POLICY, "errback": lambda exc, delay: self.ledger.sent(current[0])}
        numbers = iter(self.seqs)
        while not self.halt.is_set():
            chunk = list(itertools.islice(numbers, self.size))
            if not chunk:
                return
            sent: list[int] = []
            batch = producer.confirms(timeout=15)
            with contextlib.suppress(BrokerError), batch:
                for seq in chunk:
                    current[0] = seq
                    self.ledger.sent(seq)
                    try:
                        producer.publish(
                            {"seq": seq}, routing_key=self.queue.name, headers={"seq": seq},
                            message_id=str(seq), declare=[self.queue], retry=True,
                            retry_policy=policy,
                        )  # fmt: skip
                    except BrokerError:
                        self.ledger.settle(seq, "unknown")
                        raise
                    sent.append(seq)
            nacked = {int(r.message_id) for r in batch.nacked}
            unconfirmed = {int(r.message_id) for r in batch.unconfirmed}
            for seq in sent:
                fate = "failed" if seq in nacked else "unknown" if seq in unconfirmed else None
                self.ledger.settle(seq, fate or "confirmed")
            time.sleep(self.pace)


class AckingConsumer(Client):
    """A :class:`ConsumerLoop` acking every message it gets (prefetch 20) after ``work`` s."""

    def __init__(
        self, name: str, connect: Callable[[], Connection], queue: Queue, ledger: Ledger,
        work: float,
    ) -> None:  # fmt: skip
        super().__init__(name, connect)
        self.queue, self.ledger, self.work_time = queue, ledger, work
        self.times: list[float] = []  # when each copy arrived, in order
        self.loop = ConsumerLoop(self.conn, self._consumers, drain_timeout=0.25)

    def _consumers(self, channel: Any) -> list[Consumer]:
        return [Consumer(channel, queues=[self.queue], on_message=self._handle, prefetch_count=20)]

    def _handle(self, message: Any) -> None:
        copy = _copy(message.raw)
        self.ledger.received(copy)
        self.times.append(copy.at)
        if self.work_time:
            time.sleep(self.work_time)
        message.ack()

    def work(self) -> None:
        self.halt_loop = threading.Thread(target=self._stop_on_halt, daemon=True)
        self.halt_loop.start()
        self.loop.run(handle_signals=False)

    def _stop_on_halt(self) -> None:
        self.halt.wait()
        self.loop.stop()

    def received_since(self, since: float) -> bool:
        return bool(self.times) and self.times[-1] > since


def _longest_pause(times: list[float], since: float) -> float:
    """The longest gap between consecutive ``times`` from the last one before ``since`` on."""
    start = max(0, bisect.bisect_right(times, since) - 1)
    window = times[start:]
    return max((b - a for a, b in itertools.pairwise(window)), default=0.0)


def drain_queue(connect: Callable[[], Connection], queue: str) -> list[Copy]:
    """Every message left in ``queue``, taken (``no_ack``) through a new connection."""
    left: list[Copy] = []
    with connect() as conn, conn.channel() as channel, contextlib.suppress(NotFound):
        while (message := channel.basic_get(queue=queue, no_ack=True)) is not None:
            left.append(_copy(message))
    return left


class Traffic:
    """Two publishers (per-message and pipelined confirms) and two consumers on one queue.

    Args:
        connect: makes each client's connection (all brokers in its URL list).
        queue: makes the queue published to (by the default exchange) and consumed
            from; each client gets its own object, as entities bind to channels.
        pace: seconds each publisher pauses after a message (per-message) or a batch.
        work: seconds each consumer spends on a message before acking it (with a
            backlog, each then holds a prefetch window of unacked messages).
    """

    def __init__(
        self,
        connect: Callable[[], Connection],
        queue: Callable[[], Queue],
        pace: float,
        work: float = 0.0,
    ) -> None:
        self.connect, self.queue = connect, queue()
        self.ledger = Ledger()
        self.confirming_seqs, self.pipelined_seqs = range(0, 10**6), range(10**6, 2 * 10**6)
        self.publishers: list[Client] = [
            ConfirmingPublisher("confirming", connect, queue(), self.ledger,
                                self.confirming_seqs, pace),
            PipelinedPublisher("pipelined", connect, queue(), self.ledger, self.pipelined_seqs,
                               pace * 10),
        ]  # fmt: skip
        self.consumers = [AckingConsumer(f"consumer-{n}", connect, queue(), self.ledger, work)
                          for n in (1, 2)]  # fmt: skip
        self.clients: list[Client] = [*self.publishers, *self.consumers]

    def __enter__(self) -> Traffic:
        for client in self.clients:
            client.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the publishers, then the consumers (their unacked messages go back)."""
        for group in (self.publishers, self.consumers):
            for client in group:
                client.halt.set()
            for client in group:
                client.join(60)
                assert not client.is_alive(), f"{client.name} did not stop"

    def errors(self) -> dict[str, str]:
        """What ended a client's thread, with the traceback, by client."""
        return {
            c.name: "".join(traceback.format_exception(c.error))
            for c in self.clients
            if c.error is not None
        }

    def nodes(self) -> dict[str, str | None]:
        """Where each client is connected now."""
        return {client.name: client.node for client in self.clients}

    def progressed(self, since: float, confirms: int) -> bool:
        """Both publishers confirmed ``confirms`` more and both consumers received since then."""
        ledger = self.ledger
        return (
            ledger.confirmed_since(since, self.confirming_seqs) >= confirms
            and ledger.confirmed_since(since, self.pipelined_seqs) >= confirms
            and all(consumer.received_since(since) for consumer in self.consumers)
        )

    def wait_for_progress(
        self, since: float, confirms: int = 20, timeout: float = 90.0
    ) -> dict[str, float]:
        """Wait until :meth:`progressed`; return each client's longest pause around ``since``.

        A client's pause is the longest time between two of its confirms (or
        deliveries) from its last one before ``since`` on: how long a fault
        at ``since`` interrupted it.
        """
        wait_until(
            lambda: self.progressed(since, confirms) or bool(self.errors()),
            timeout,
            interval=0.05,
            message=f"traffic did not resume (clients on {self.nodes()})",
        )
        assert not self.errors(), self.errors()
        events = {
            "confirming": self.ledger.confirm_times(self.confirming_seqs),
            "pipelined": self.ledger.confirm_times(self.pipelined_seqs),
            **{consumer.name: list(consumer.times) for consumer in self.consumers},
        }
        return {name: _longest_pause(times, since) for name, times in events.items()}

    def redelivered_since(self, since: float) -> int:
        """How many flagged copies the consumers got after ``since`` (not counting the drain)."""
        with self.ledger.lock:
            return sum(1 for copy in self.ledger.copies if copy.at > since and copy.flagged)

    def verdict(self) -> Verdict:
        """After :meth:`stop`: drain the queue and add everything up."""
        return verdict(self.ledger, drain_queue(self.connect, self.queue.name))
