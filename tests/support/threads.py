"""A bounded, mixed load of threads on one connection: publishers, consumers, ack workers.

:class:`MixedLoad` runs, for ``seconds``, publisher threads (plain,
per-message confirms, and ``confirms()`` batches, each on a channel of its
own), consumer threads (each consuming on a channel of its own and draining
the connection) and worker threads acking what the consumers hand them.
Every message carries ``<publisher>.<n>``; every publish is recorded as
confirmed or unknown, every delivery with its redelivered flag, and every
error by the thread it hit (the counting of TESTING.md).
"""

from __future__ import annotations

import collections
import contextlib
import queue as queues
import threading
import time
from collections.abc import Callable

from broker import Connection, Consumer, Producer, Queue
from broker.errors import BrokerError
from broker.messaging.message import Message

__all__ = ["MixedLoad"]

BODY_PAD = b"x" * 80


class MixedLoad:
    """Publishers, consumers and ack workers sharing ``conn`` (see the module docstring).

    Args:
        conn: the shared connection.
        queue: the queue everything goes through (declared by the caller).
        publishers, consumers, workers: how many threads of each.
        retry: publish with ``retry=True`` (recovering across a lost link).
    """

    def __init__(
        self,
        conn: Connection,
        queue: str,
        *,
        publishers: int = 20,
        consumers: int = 4,
        workers: int = 8,
        retry: bool = False,
    ) -> None:
        self.conn = conn
        self.queue = queue
        self.retry = retry
        self.confirmed: set[str] = set()
        self.unknown: set[str] = set()
        self.deliveries: collections.Counter[str] = collections.Counter()
        self.unflagged: collections.Counter[str] = collections.Counter()
        self.errors: dict[str, list[BaseException]] = collections.defaultdict(list)
        self.callback_threads: dict[int, set[int]] = collections.defaultdict(set)
        self._handed: queues.Queue[Message | None] = queues.Queue()
        self._publishing = threading.Event()
        self._consuming = threading.Event()
        self._lock = threading.Lock()
        self._threads = (
            [self._thread(f"publisher-{i}", self._publish, i) for i in range(publishers)]
            + [self._thread(f"consumer-{i}", self._consume, i) for i in range(consumers)]
            + [self._thread(f"worker-{i}", self._ack, i) for i in range(workers)]
        )
        self._workers = workers

    def _thread(self, name: str, target: Callable[[int], None], i: int) -> threading.Thread:
        def run() -> None:
            try:
                target(i)
            except BaseException as exc:
                self.errors[name].append(exc)

        return threading.Thread(target=run, name=name, daemon=True)

    # -- running -------------------------------------------------------------------

    def run(
        self, seconds: float, settle: float = 20.0, during: Callable[[], None] | None = None
    ) -> None:
        """Publish for ``seconds`` (calling ``during()`` halfway), then consume until settled."""
        self._publishing.set()
        self._consuming.set()
        for thread in self._threads:
            thread.start()
        time.sleep(seconds / 2)
        if during is not None:
            during()
        time.sleep(seconds / 2)
        self._publishing.clear()
        publishers = [t for t in self._threads if t.name.startswith("publisher")]
        for thread in publishers:
            thread.join(settle)
        deadline = time.monotonic() + settle
        wanted = self.confirmed if self.retry else self.confirmed | self.unknown
        while time.monotonic() < deadline and not wanted <= set(self.deliveries):
            time.sleep(0.05)
        time.sleep(0.5)  # what is still on its way (duplicates) arrives
        # The workers finish acking before the consumers close their channels.
        for _ in range(self._workers):
            self._handed.put(None)
        for thread in self._threads:
            if thread.name.startswith("worker"):
                thread.join(settle)
        self._consuming.clear()
        for thread in self._threads:
            thread.join(settle)

    @property
    def hung(self) -> list[str]:
        """Threads still alive after :meth:`run` (none may be)."""
        return [t.name for t in self._threads if t.is_alive()]

    # -- the threads ------------------------------------------------------------------

    def _publish(self, i: int) -> None:
        mode = i % 3
        # Plain producers of a connection share its default channel: these
        # threads get channels of their own (confirming producers always do).
        own = None if mode else self.conn.channel()
        producer = Producer(own or self.conn, routing_key=self.queue, confirm_publish=mode == 1)
        n = 0
        try:
            while self._publishing.is_set():
                batch = [f"{i}.{n + k}" for k in range(20 if mode == 2 else 1)]
                n += len(batch)
                try:
                    if mode == 2:
                        with producer.confirms(timeout=10):
                            for key in batch:
                                producer.publish(key.encode() + BODY_PAD, retry=self.retry)
                    else:
                        producer.publish(batch[0].encode() + BODY_PAD, retry=self.retry)
                except BrokerError as exc:
                    self._unknown(batch, exc, f"publisher-{i}")
                    continue
                with self._lock:
                    (self.confirmed if mode else self.unknown).update(batch)
                if not mode:
                    time.sleep(0.002)  # plain publishers would outrun the consumers
        finally:
            with contextlib.suppress(BrokerError):
                producer.close()
                if own is not None:
                    own.close()

    def _unknown(self, batch: list[str], exc: BaseException, who: str) -> None:
        with self._lock:
            self.unknown.update(batch)
        self.errors[who].append(exc)
        time.sleep(0.05)

    def _consume(self, i: int) -> None:
        me = threading.get_ident()

        def on_message(message: Message) -> None:
            self.callback_threads[i].add(threading.get_ident())
            key = message.body[: -len(BODY_PAD)].decode()
            with self._lock:
                self.deliveries[key] += 1
                if not message.delivery_info.get("redelivered"):
                    self.unflagged[key] += 1
            self._handed.put(message)

        channel = self.conn.channel()
        consumer = Consumer(channel, [Queue(self.queue, no_declare=True)],
                            on_message=on_message, prefetch_count=50)  # fmt: skip
        consumer.consume()
        self.callback_threads[i].add(me)
        try:
            while self._consuming.is_set():
                try:
                    self.conn.drain_events(timeout=0.25)
                except TimeoutError:
                    continue
                except BrokerError as exc:
                    self.errors[f"consumer-{i}"].append(exc)
                    if not self.retry:
                        return
                    time.sleep(0.1)
        finally:
            with contextlib.suppress(BrokerError):
                consumer.close()
                channel.close()

    def _ack(self, i: int) -> None:
        while (message := self._handed.get(timeout=60)) is not None:
            try:
                message.ack()
            except BrokerError as exc:  # a delivery of a lost link: redelivered elsewhere
                if not self.retry:
                    raise
                self.errors[f"worker-{i}"].append(exc)
