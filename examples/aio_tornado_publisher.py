"""Tornado: a RequestHandler publishing through a pooled asyncio producer; 503 when it is busy.

The modern replacement for pika's ``TornadoConnection``: Tornado runs on
asyncio, so its handlers await :mod:`broker.aio` directly. The pool bounds how
many requests publish at once; a request that finds every producer in use
for 50 ms is answered ``503 Service Unavailable`` with ``Retry-After``
instead of queueing without bound.
"""

import asyncio
import json

import tornado.httpclient
import tornado.httpserver
import tornado.netutil
import tornado.web

from broker import Queue
from broker.aio import Connection
from broker.aio.pools import ProducerPool
from broker.errors import LimitExceeded

URL = "memory://"
orders = Queue("orders", durable=False)


class OrderHandler(tornado.web.RequestHandler):
    def initialize(self, producers: ProducerPool) -> None:
        self.producers = producers

    async def post(self) -> None:
        order = json.loads(self.request.body)
        try:
            async with self.producers.acquire(timeout=0.05) as producer:
                await producer.publish(order, routing_key="orders", declare=[orders])
        except LimitExceeded:  # every producer is busy: tell the client to come back
            self.set_status(503)
            self.set_header("Retry-After", "1")
            self.finish({"error": "busy, try again"})
            return
        self.set_status(202)
        self.finish({"queued": order["id"]})


def make_app(producers: ProducerPool) -> tornado.web.Application:
    return tornado.web.Application([(r"/orders", OrderHandler, {"producers": producers})])


async def main() -> None:
    # Confirmed publishes: a 202 means the broker has the order.
    producers = ProducerPool(Connection(URL), limit=10, confirm_publish=True)
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")  # a free port, for this demo
    server = tornado.httpserver.HTTPServer(make_app(producers))
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    client = tornado.httpclient.AsyncHTTPClient()
    response = await client.fetch(
        f"http://127.0.0.1:{port}/orders", method="POST", body=json.dumps({"id": 17})
    )
    print(response.code, json.loads(response.body))  # 202 {'queued': 17}
    server.stop()
    await server.close_all_connections()
    await producers.close()


if __name__ == "__main__":
    asyncio.run(main())
