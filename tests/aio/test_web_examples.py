"""The web examples, tested with each framework's own test client.

``examples/aio_tornado_publisher.py`` with Tornado's ``AsyncHTTPTestCase``,
``examples/aio_asgi_starlette.py`` with Starlette's ``TestClient`` (which runs
the lifespan). Both publish through a pool of asyncio producers on
``memory://`` and answer 503 while every producer is in use.
"""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

from tests.support.services import require_module

tornado_testing = require_module("tornado.testing")
starlette_testclient = require_module("starlette.testclient")

from broker import Connection as SyncConnection  # noqa: E402
from broker.aio.pools import ProducerPool  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TORNADO = runpy.run_path(str(EXAMPLES / "aio_tornado_publisher.py"))
ASGI = runpy.run_path(str(EXAMPLES / "aio_asgi_starlette.py"))


def queued_orders() -> list[Any]:
    """The orders waiting in the in-process broker's ``orders`` queue (taken and acked)."""
    orders = TORNADO["orders"]  # the same queue as ASGI["orders"]
    with SyncConnection("memory://") as conn, conn.SimpleQueue(orders) as queue:
        taken = []
        while queue.qsize():
            message = queue.get(timeout=1)
            taken.append(message.payload)
            message.ack()
        return taken


class TestTornadoPublisher(tornado_testing.AsyncHTTPTestCase):  # type: ignore[misc]
    def get_app(self) -> Any:
        self.producers = ProducerPool(
            TORNADO["Connection"](TORNADO["URL"]), limit=1, confirm_publish=True
        )
        return TORNADO["make_app"](self.producers)

    def tearDown(self) -> None:
        self.io_loop.run_sync(self.producers.close)
        super().tearDown()

    def post(self, order: dict[str, Any]) -> Any:
        return self.fetch("/orders", method="POST", body=json.dumps(order))

    def test_an_order_is_published_and_answered_202(self) -> None:
        response = self.post({"id": 1})
        assert (response.code, json.loads(response.body)) == (202, {"queued": 1})
        assert queued_orders() == [{"id": 1}]

    def test_503_while_every_producer_is_in_use_then_202_again(self) -> None:
        lease = self.io_loop.run_sync(self.producers.acquire)  # the pool's only producer
        busy = self.post({"id": 2})
        assert busy.code == 503 and busy.headers["Retry-After"] == "1"
        self.io_loop.run_sync(lease.release)
        assert self.post({"id": 3}).code == 202
        assert queued_orders() == [{"id": 3}]


def test_the_starlette_lifespan_opens_the_pool_and_a_request_publishes() -> None:
    app = ASGI["app"]
    with starlette_testclient.TestClient(app) as client:
        assert isinstance(app.state.producers, ProducerPool)
        response = client.post("/orders", json={"id": 4})
        assert (response.status_code, response.json()) == (202, {"queued": 4})
        assert queued_orders() == [{"id": 4}]
    assert app.state.producers.is_closed  # the lifespan closed it at shutdown


def test_the_starlette_app_answers_503_while_every_producer_is_in_use() -> None:
    app = ASGI["app"]
    with starlette_testclient.TestClient(app) as client:
        producers = app.state.producers
        leases = [client.portal.call(producers.acquire) for _ in range(producers.limit)]
        busy = client.post("/orders", json={"id": 5})
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        for lease in leases:
            client.portal.call(lease.release)
        assert client.post("/orders", json={"id": 6}).status_code == 202
        assert queued_orders() == [{"id": 6}]
