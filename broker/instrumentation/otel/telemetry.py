"""The OpenTelemetry implementation of :class:`broker.instrumentation.hooks.Hooks`.

Spans, named ``{operation} {destination}``
(:func:`~broker.instrumentation.otel.semconv.span_name`):

* ``publish`` -- kind PRODUCER, around one publish (its confirm wait and any
  retries and failovers included, as span events); its context is written
  into the message's headers.
* ``process`` -- kind CONSUMER, around the consumer's callbacks for one
  delivery; a child of the context found in the headers, so the publisher's
  trace continues (also when pika or aio-pika published it).
* ``receive`` -- kind CONSUMER, when the application takes a delivery itself
  (``async for``, ``get()``); a child of the publisher's context too.
* ``ack``/``reject``/``requeue`` -- kind CLIENT, a settlement, under the
  current span (the ``process`` span inside a callback) and linked to the
  publisher's context.

Metrics: :data:`~broker.instrumentation.otel.semconv.METRICS`.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import Meter
from opentelemetry.trace import Link, Span, SpanKind, StatusCode, Tracer

import broker.instrumentation.otel.semconv as semconv
from broker.errors import HeartbeatTimeout
from broker.instrumentation.hooks import PoolCounts
from broker.instrumentation.otel.carrier import creation_context, inject, message_attributes
from broker.instrumentation.otel.endpoint import Endpoints, target_attributes
from broker.instrumentation.otel.instruments import Instruments, pool_attributes
from broker.url.targets import Target
from transports.base import RawMessage

__all__ = ["OpenTelemetryHooks"]

R = TypeVar("R")

_clock = time.perf_counter


def _fail(span: Span, attributes: dict[str, Any], exc: BaseException) -> None:
    error_type = type(exc).__qualname__
    attributes[semconv.ERROR_TYPE] = error_type
    if span.is_recording():
        span.set_attribute(semconv.ERROR_TYPE, error_type)
        span.record_exception(exc)
        span.set_status(StatusCode.ERROR, f"{error_type}: {exc}")


class OpenTelemetryHooks:
    """Records brokerpool's work as OpenTelemetry spans and metrics.

    Args:
        tracer: where spans are made.
        meter: where the instruments are made.
    """

    def __init__(self, tracer: Tracer, meter: Meter) -> None:
        self.tracer = tracer
        self.metrics = Instruments(meter)
        self.endpoints = Endpoints()
        # connection -> why its last link was lost, until it reconnects
        self._lost: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    # -- publishing -----------------------------------------------------------------------

    def _start_publish(
        self,
        owner: object | None,
        body: bytes,
        properties: dict[str, Any],
        exchange: str,
        routing_key: str,
    ) -> tuple[Span, dict[str, Any], Any]:
        metric_attributes = {
            **self.endpoints.of(owner),
            semconv.OPERATION_TYPE: "send",
            semconv.OPERATION_NAME: "publish",
            semconv.DESTINATION: exchange,
        }
        attributes = {**metric_attributes, **message_attributes(properties, len(body))}
        if routing_key:
            attributes[semconv.ROUTING_KEY] = routing_key
        span = self.tracer.start_span(
            semconv.span_name("publish", exchange, routing_key),
            kind=SpanKind.PRODUCER,
            attributes=attributes,
        )
        if not span.get_span_context().is_valid:
            # A no-op tracer: there is no context to carry or to make current.
            return span, metric_attributes, None
        context = trace.set_span_in_context(span)
        inject(properties, context)
        return span, metric_attributes, otel_context.attach(context)

    def _end_publish(
        self, span: Span, attributes: dict[str, Any], token: Any, started: float
    ) -> None:
        if token is not None:
            otel_context.detach(token)
        span.end()
        self.metrics.publish_duration.record(_clock() - started, attributes)
        self.metrics.sent.add(1, attributes)

    def publish(
        self,
        owner: object | None,
        body: bytes,
        properties: dict[str, Any],
        exchange: str,
        routing_key: str,
        send: Callable[[], None],
    ) -> None:
        """A ``publish`` span around ``send()``, its context in the message's headers."""
        started = _clock()
        span, attributes, token = self._start_publish(
            owner, body, properties, exchange, routing_key
        )
        try:
            send()
        except BaseException as exc:
            _fail(span, attributes, exc)
            raise
        finally:
            self._end_publish(span, attributes, token, started)

    async def publish_async(
        self,
        owner: object | None,
        body: bytes,
        properties: dict[str, Any],
        exchange: str,
        routing_key: str,
        send: Callable[[], Awaitable[None]],
    ) -> None:
        """:meth:`publish` for the asyncio producer."""
        started = _clock()
        span, attributes, token = self._start_publish(
            owner, body, properties, exchange, routing_key
        )
        try:
            await send()
        except BaseException as exc:
            _fail(span, attributes, exc)
            raise
        finally:
            self._end_publish(span, attributes, token, started)

    def confirmed(self, seconds: float, batch: bool, nacked: bool) -> None:
        """Record a publisher confirm's latency."""
        self.metrics.confirm_duration.record(
            seconds,
            {
                semconv.CONFIRM_MODE: "batch" if batch else "message",
                semconv.CONFIRM_OUTCOME: "nack" if nacked else "ack",
            },
        )

    # -- consuming ------------------------------------------------------------------------

    def _delivery(
        self, owner: object | None, raw: RawMessage, queue: str, operation: str
    ) -> tuple[str, dict[str, Any], dict[str, Any], Context | None]:
        info = raw.delivery_info
        exchange = info.get("exchange") or ""
        routing_key = info.get("routing_key") or ""
        metric_attributes = {
            **self.endpoints.of(owner),
            semconv.OPERATION_TYPE: operation,
            semconv.OPERATION_NAME: operation,
            semconv.DESTINATION: exchange,
            semconv.SUBSCRIPTION: queue,
        }
        body = raw.body
        attributes = {
            **metric_attributes,
            **message_attributes(raw.properties, len(body) if body is not None else 0),
            semconv.DELIVERY_TAG: raw.delivery_tag,
        }
        if routing_key:
            attributes[semconv.ROUTING_KEY] = routing_key
        self.metrics.consumed.add(1, metric_attributes)
        if info.get("redelivered"):
            self.metrics.redeliveries.add(1, metric_attributes)
        name = semconv.span_name(operation, exchange, routing_key)
        return name, attributes, metric_attributes, creation_context(raw)

    def process(
        self, owner: object | None, raw: RawMessage, queue: str, handler: Callable[[], R]
    ) -> R:
        """A ``process`` span around ``handler()``, continuing the publisher's trace."""
        name, attributes, metric_attributes, parent = self._delivery(owner, raw, queue, "process")
        started = _clock()
        with self.tracer.start_as_current_span(
            name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes,
            record_exception=False, set_status_on_exception=False,
        ) as span:  # fmt: skip
            try:
                return handler()
            except BaseException as exc:
                _fail(span, metric_attributes, exc)
                raise
            finally:
                self.metrics.process_duration.record(_clock() - started, metric_attributes)

    async def process_async(
        self,
        owner: object | None,
        raw: RawMessage,
        queue: str,
        handler: Callable[[], Awaitable[None]],
    ) -> None:
        """:meth:`process` for the asyncio consumer's callbacks."""
        name, attributes, metric_attributes, parent = self._delivery(owner, raw, queue, "process")
        started = _clock()
        with self.tracer.start_as_current_span(
            name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes,
            record_exception=False, set_status_on_exception=False,
        ) as span:  # fmt: skip
            try:
                await handler()
            except BaseException as exc:
                _fail(span, metric_attributes, exc)
                raise
            finally:
                self.metrics.process_duration.record(_clock() - started, metric_attributes)

    def received(self, owner: object | None, raw: RawMessage, queue: str) -> None:
        """A ``receive`` span: the application took the delivery itself."""
        name, attributes, _, parent = self._delivery(owner, raw, queue, "receive")
        self.tracer.start_span(
            name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        ).end()

    def settled(self, owner: object | None, raw: RawMessage, operation: str) -> None:
        """An ``ack``/``reject``/``requeue`` span, linked to the publisher's context."""
        info = raw.delivery_info
        exchange = info.get("exchange") or ""
        metric_attributes = {**self.endpoints.of(owner), semconv.DESTINATION: exchange}
        attributes = {
            **metric_attributes,
            semconv.OPERATION_TYPE: "settle",
            semconv.OPERATION_NAME: operation,
            semconv.DELIVERY_TAG: raw.delivery_tag,
        }
        created = creation_context(raw)
        links = []
        if created is not None:
            links.append(Link(trace.get_current_span(created).get_span_context()))
        name = semconv.span_name(operation, exchange, info.get("routing_key") or "")
        self.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes, links=links).end()
        if operation == "ack":
            self.metrics.acks.add(1, metric_attributes)
        else:
            metric_attributes[semconv.REQUEUE] = operation == "requeue"
            self.metrics.rejects.add(1, metric_attributes)

    # -- connections ----------------------------------------------------------------------

    def connection_opened(self, conn: object) -> None:
        """Count the connect (and the reconnect, by why the last link was lost)."""
        self.endpoints.forget(conn)
        attributes = self.endpoints.of(conn)
        self.metrics.connects.add(1, attributes)
        with self._lock:
            reason = self._lost.pop(conn, None)
        if reason is not None:
            self.metrics.reconnects.add(1, {**attributes, semconv.REASON: reason})
            trace.get_current_span().add_event(
                "brokerpool.reconnected", {**attributes, semconv.REASON: reason}
            )

    def connection_closed(self, conn: object, exc: BaseException | None) -> None:
        """Note why a link was lost; count heartbeat timeouts."""
        if exc is None:
            return
        reason = type(exc).__qualname__
        with self._lock:
            self._lost[conn] = reason
        attributes = self.endpoints.of(conn)
        if isinstance(exc, HeartbeatTimeout):
            self.metrics.heartbeat_timeouts.add(1, attributes)
        trace.get_current_span().add_event(
            "brokerpool.connection_lost", {**attributes, semconv.ERROR_TYPE: reason}
        )

    def connection_unblocked(self, seconds: float) -> None:
        """Add the seconds a connection was blocked."""
        self.metrics.blocked.add(seconds)

    def failed_over(self, previous: Target, current: Target) -> None:
        """Count the failover; note it on the current span (a retrying publish, say)."""
        attributes = {**target_attributes(current), semconv.FAILOVER_FROM: previous.host}
        self.metrics.failovers.add(1, attributes)
        trace.get_current_span().add_event("brokerpool.failover", attributes)

    # -- pools ----------------------------------------------------------------------------

    def pool_created(self, pool: PoolCounts) -> None:
        """Observe the pool's counts from now on."""
        self.metrics.pools.add(pool)

    def pool_waited(self, pool: PoolCounts, seconds: float, timed_out: bool) -> None:
        """Record a borrower's wait."""
        attributes = pool_attributes(pool)
        if timed_out:
            attributes[semconv.ERROR_TYPE] = "timeout"
        self.metrics.pool_wait.record(seconds, attributes)

    # -- the command line -----------------------------------------------------------------

    @contextlib.contextmanager
    def span(self, name: str) -> Iterator[str | None]:
        """A current span ``brokerpool {name}``; yields its trace id (``None`` if unsampled)."""
        with self.tracer.start_as_current_span(f"brokerpool {name}"):
            yield self.current_trace_id()

    def current_trace_id(self) -> str | None:
        """The current span's trace id, 32 hex digits, if it is a real (sampled) one."""
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return trace.format_trace_id(context.trace_id)

    def close(self) -> None:
        """Stop observing pools (the instruments themselves cannot be removed)."""
        self.metrics.close()

    def __repr__(self) -> str:
        return f"<OpenTelemetryHooks {self.metrics!r} {self.endpoints!r}>"
