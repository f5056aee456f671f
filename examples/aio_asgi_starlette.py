"""ASGI (Starlette): the lifespan opens a pool of asyncio producers; handlers publish through it.

Serve ``app`` with any ASGI server (``uvicorn aio_asgi_starlette:app``). The
lifespan opens the pool before the first request and closes it, with its
connection, at shutdown; a request that finds every producer busy for 50 ms
gets ``503 Service Unavailable``. FastAPI takes the same ``lifespan``.
"""

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from broker import Queue
from broker.aio import Connection
from broker.aio.pools import ProducerPool
from broker.errors import LimitExceeded

URL = "memory://"
orders = Queue("orders", durable=False)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    producers = ProducerPool(Connection(URL), limit=10, confirm_publish=True)
    async with producers.acquire() as producer:  # connect (and declare) before serving
        await producer.maybe_declare(orders)
    app.state.producers = producers
    try:
        yield
    finally:
        await producers.close()


async def place_order(request: Request) -> JSONResponse:
    order = await request.json()
    try:
        async with request.app.state.producers.acquire(timeout=0.05) as producer:
            await producer.publish(order, routing_key="orders")
    except LimitExceeded:
        return JSONResponse({"error": "busy, try again"}, 503, {"Retry-After": "1"})
    return JSONResponse({"queued": order["id"]}, 202)


app = Starlette(routes=[Route("/orders", place_order, methods=["POST"])], lifespan=lifespan)


if __name__ == "__main__":
    # In-process, for this demo: Starlette's TestClient runs the lifespan and one request.
    from starlette.testclient import TestClient

    with TestClient(app) as client:
        response = client.post("/orders", json={"id": 17})
        print(response.status_code, response.json())  # 202 {'queued': 17}
