"""Publishing from a web app through the shared pools (a gunicorn/Flask stand-in).

The app is a plain WSGI callable, served here by the standard library's
``wsgiref`` with one thread per request, the way a threaded gunicorn worker
serves it. Every request borrows a producer (and with it a pooled connection)
from ``pools.producers[connection]`` for the duration of one publish.

Run the self-contained demo on the in-process broker (from the repository
root, with brokerpool installed or ``PYTHONPATH=.``)::

    python examples/pools_web_worker.py

or against RabbitMQ::

    BROKER_URL=amqp://guest:guest@127.0.0.1:5672// python examples/pools_web_worker.py

Under gunicorn: ``gunicorn -w 4 --threads 8 pools_web_worker:app``. With
``--preload`` the master imports this module (and may even publish) before it
forks the workers; each worker still opens its own connections, because the
pools forget the master's items in every forked child. No ``post_fork`` hook
is needed.
"""

from __future__ import annotations

import json
import os
import socketserver
import threading
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pools
from broker import Connection, LimitExceeded

BROKER_URL = os.environ.get("BROKER_URL", "memory://")
EVENTS = "web-events"  # the queue the app publishes to

# Created at import time, like a Flask app's extensions. It is only the
# template of the pools: it never connects by itself.
connection = Connection(BROKER_URL)

# At most 8 connections per process, shared by every request thread.
pools.set_limit(8)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Queue the request body as an event; answer 503 if the broker pool stays busy."""
    size = int(environ.get("CONTENT_LENGTH") or 0)
    event = {"path": environ["PATH_INFO"], "body": environ["wsgi.input"].read(size).decode()}
    try:
        # Wait at most 2 s for a free producer: a web request must not hang.
        with pools.producers[connection].acquire(block=True, timeout=2) as producer:
            producer.publish(event, routing_key=EVENTS)
    except LimitExceeded:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"busy, try again\n"]
    start_response("202 Accepted", [("Content-Type", "text/plain")])
    return [b"queued\n"]


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """One thread per request, like a threaded gunicorn worker."""

    daemon_threads = True
    request_queue_size = 64  # the listen backlog: room for every client at once


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def post(url: str, payload: dict[str, Any]) -> int:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def declare_queue() -> None:
    """Declare the events queue once, at start-up (not on every request)."""
    with pools.connections[connection].acquire_channel(block=True, timeout=2) as (_, channel):
        channel.queue_declare(queue=EVENTS, durable=True, auto_delete=False)


def count_and_delete_events() -> int:
    """Drain the events queue through a pooled connection, delete it, return the count."""
    with pools.connections[connection].acquire_channel(block=True, timeout=2) as (_, channel):
        count = 0
        while channel.basic_get(EVENTS, no_ack=True) is not None:
            count += 1
        channel.queue_delete(queue=EVENTS)
        return count


def serve_and_post(requests: int = 40, clients: int = 8) -> int:
    """Serve the app on a loopback port and POST to it from several client threads."""
    server = make_server(
        "127.0.0.1", 0, app, server_class=ThreadingWSGIServer, handler_class=QuietHandler
    )
    url = f"http://127.0.0.1:{server.server_port}/orders"
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        statuses: list[int] = []
        lock = threading.Lock()

        def client(n: int) -> None:
            for i in range(n, requests, clients):
                status = post(url, {"order": i})
                with lock:
                    statuses.append(status)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return statuses.count(202)
    finally:
        server.shutdown()
        server.server_close()


def fork_check() -> str:
    """Fork a 'worker' after the 'master' used the pool: the child gets its own connection."""
    with pools.connections[connection].acquire() as conn:
        conn.default_channel  # noqa: B018 - the master connects before forking
        parents = conn.resource
    pid = os.fork()
    if pid == 0:  # the worker: always leave through os._exit
        code = 1
        try:
            with pools.connections[connection].acquire() as conn:
                own = conn.resource is not parents
                conn.default_channel.queue_declare(queue="", exclusive=True)  # it works
                code = 0 if own else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    ok = os.waitstatus_to_exitcode(status) == 0
    return "the worker opened its own connection" if ok else "the worker reused the master's!"


def main() -> None:
    declare_queue()
    accepted = serve_and_post()
    print(f"{accepted} requests accepted, {count_and_delete_events()} events queued")
    print("connections:", pools.connections[connection])
    print("producers:  ", pools.producers[connection])
    if hasattr(os, "fork"):
        print(fork_check())
    pools.reset()


if __name__ == "__main__":
    main()
