"""Trace context in message headers, and the attributes that say where a message went.

The W3C trace context travels in the application headers as ``traceparent``
(and ``tracestate``), written and read by OpenTelemetry's global propagator
-- exactly what the pika and aio-pika instrumentations do, so a trace crosses
the broker between any of them and brokerpool. Header values arrive as ``str``
from most brokers and as ``bytes`` from some; both are read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter

import broker.instrumentation.otel.semconv as semconv
from transports.base import RawMessage

__all__ = ["HeaderGetter", "creation_context", "inject", "message_attributes"]


class HeaderGetter(Getter[Mapping[str, Any]]):
    """Reads trace context from AMQP application headers (``str`` or ``bytes`` values)."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        """The header ``key`` as a one-item list, or ``None`` when absent."""
        value = carrier.get(key)
        if value is None:
            return None
        if isinstance(value, bytes | bytearray):
            value = bytes(value).decode("utf-8", "replace")
        return [str(value)]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        """Every header name."""
        return list(carrier)


_GETTER = HeaderGetter()


def inject(properties: dict[str, Any], context: Context) -> None:
    """Write ``context`` into a fresh copy of ``properties['application_headers']``.

    The caller's header mapping is never modified.
    """
    headers = dict(properties.get("application_headers") or ())
    propagate.inject(headers, context=context)
    properties["application_headers"] = headers


def creation_context(raw: RawMessage) -> Context | None:
    """The context the message was published in, when its headers carry a valid one."""
    headers = raw.properties.get("application_headers")
    if not headers:
        return None
    context = propagate.extract(headers, getter=_GETTER)
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


def message_attributes(properties: Mapping[str, Any], body_size: int) -> dict[str, Any]:
    """The message's id, conversation id and body size, as span attributes.

    Never the body, never a header value.
    """
    attributes: dict[str, Any] = {semconv.BODY_SIZE: body_size}
    message_id = properties.get("message_id")
    if message_id:
        attributes[semconv.MESSAGE_ID] = str(message_id)
    correlation_id = properties.get("correlation_id")
    if correlation_id:
        attributes[semconv.CONVERSATION_ID] = str(correlation_id)
    return attributes
