"""A link cut under many threads sharing one connection (issue 14).

The fault proxy (tests/support/faultproxy.py) sits between the connection and
the machine's RabbitMQ; cutting it must reach every thread waiting on the
connection -- each raises a connection error, none hangs -- and threads that
publish with ``retry=True`` recover on the new link without losing a
confirmed message.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from broker import Connection
from broker.errors import RecoverableConnectionError
from tests.support.faultproxy import FaultProxy
from tests.support.threads import MixedLoad

#: Generous: a hang is the failure, not slowness.
HANG = 20.0


def test_a_cut_link_wakes_every_thread_waiting_on_the_connection(
    fault_proxy: Any, rabbitmq_url: str
) -> None:
    proxy: FaultProxy = fault_proxy(5672)
    conn = Connection(proxy.url_for())
    channels = [conn.channel() for _ in range(8)]
    for channel in channels[:4]:
        channel.confirm_select()
    raised: dict[int, BaseException] = {}
    waiting = threading.Barrier(9)

    def wait_for_confirms(i: int) -> None:
        waiting.wait(HANG)
        try:
            channels[i].wait_confirms(60)  # nothing outstanding: only a failure ends it
        except BaseException as exc:
            raised[i] = exc

    def drain(i: int) -> None:
        waiting.wait(HANG)
        try:
            conn.drain_events(timeout=60)
        except BaseException as exc:
            raised[i] = exc

    threads = [
        threading.Thread(target=wait_for_confirms if i < 4 else drain, args=(i,), daemon=True)
        for i in range(8)
    ]
    for thread in threads:
        thread.start()
    waiting.wait(HANG)
    threading.Event().wait(0.3)  # let them all settle into their waits
    proxy.cut(rst=True)
    for thread in threads:
        thread.join(HANG)
    assert [t for t in threads if t.is_alive()] == []
    assert sorted(raised) == list(range(8))
    assert all(isinstance(exc, RecoverableConnectionError) for exc in raised.values())
    assert conn.default_channel.is_open  # reconnects through the proxy
    conn.close()


@pytest.mark.parametrize("rst", [False, True], ids=["fin", "rst"])
def test_mixed_threads_recover_from_a_cut_link_without_losing_a_confirmed_message(
    fault_proxy: Any, rabbitmq_url: str, unique_name: str, rst: bool
) -> None:
    proxy: FaultProxy = fault_proxy(5672)
    with Connection(rabbitmq_url) as admin:
        admin.default_channel.queue_declare(queue=unique_name, durable=True, auto_delete=False)
        try:
            # Heartbeats: the broker drops its side of the cut link (and requeues
            # what it had delivered there) within seconds, not minutes.
            with Connection(proxy.url_for(), heartbeat=2) as conn:
                load = MixedLoad(
                    conn, unique_name, publishers=16, consumers=2, workers=4, retry=True
                )
                load.run(6.0, during=lambda: proxy.cut(rst=rst))
                assert load.hung == []
                lost = load.confirmed - set(load.deliveries)
                assert lost == set(), f"{len(lost)} confirmed messages lost"
                assert set(load.deliveries) <= load.confirmed | load.unknown
                print(f"\n{len(load.confirmed)} confirmed, {len(load.unknown)} unknown, "
                      f"{sum(len(v) for v in load.errors.values())} errors met")  # fmt: skip
        finally:
            admin.default_channel.queue_delete(queue=unique_name)
