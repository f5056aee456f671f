"""The names brokerpool records under: OpenTelemetry's messaging conventions, and its own.

Attribute, span and metric names follow OpenTelemetry's messaging semantic
conventions (``messaging.*``, ``server.*``, ``error.type``) where they name
the thing; what they do not cover is under ``brokerpool.*``. Every transport
speaks AMQP 0-9-1's model (exchanges, routing keys, queues), so the RabbitMQ
attributes are used on each of them; ``messaging.system`` says which broker
it was. ``docs/observability.rst`` lists them all with their units.
"""

from __future__ import annotations

__all__ = [
    "BODY_SIZE",
    "CONVERSATION_ID",
    "DELIVERY_TAG",
    "DESTINATION",
    "ERROR_TYPE",
    "MESSAGE_ID",
    "METRICS",
    "OPERATION_NAME",
    "OPERATION_TYPE",
    "POOL_API",
    "POOL_KIND",
    "REASON",
    "REQUEUE",
    "ROUTING_KEY",
    "SERVER_ADDRESS",
    "SERVER_PORT",
    "SUBSCRIPTION",
    "SYSTEM",
    "SYSTEMS",
    "Metric",
    "span_name",
    "system_for",
]

# -- attributes (OpenTelemetry's messaging conventions) -----------------------------------

SYSTEM = "messaging.system"
OPERATION_TYPE = "messaging.operation.type"
OPERATION_NAME = "messaging.operation.name"
DESTINATION = "messaging.destination.name"
SUBSCRIPTION = "messaging.destination.subscription.name"
ROUTING_KEY = "messaging.rabbitmq.destination.routing_key"
DELIVERY_TAG = "messaging.rabbitmq.message.delivery_tag"
MESSAGE_ID = "messaging.message.id"
BODY_SIZE = "messaging.message.body.size"
CONVERSATION_ID = "messaging.message.conversation_id"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"

# -- attributes of brokerpool's own ----------------------------------------------------------

REQUEUE = "brokerpool.requeue"
REASON = "brokerpool.reconnect.reason"
CONFIRM_MODE = "brokerpool.confirm.mode"
CONFIRM_OUTCOME = "brokerpool.confirm.outcome"
POOL_KIND = "brokerpool.pool.kind"
POOL_API = "brokerpool.pool.api"
FAILOVER_FROM = "brokerpool.failover.from"

#: ``messaging.system`` for each built-in transport name; others are reported by their name.
SYSTEMS = {
    "amqp": "rabbitmq",
    "pyamqp": "rabbitmq",
    "amqps": "rabbitmq",
    "redis": "redis",
    "rediss": "redis",
    "memory": "memory",
}


def system_for(transport: str) -> str:
    """``messaging.system`` for a transport name or URL scheme."""
    return SYSTEMS.get(transport, transport)


def span_name(operation: str, exchange: str, routing_key: str) -> str:
    """``{operation} {destination}``: the exchange, or the routing key on the default exchange.

    On the default exchange the routing key is the queue's name, so a publish
    to queue ``q`` is ``publish q`` and its processing ``process q``.
    """
    destination = exchange or routing_key
    return f"{operation} {destination}" if destination else operation


class Metric:
    """One instrument's name, unit and description (the table in ``docs/observability.rst``)."""

    __slots__ = ("description", "name", "unit")

    def __init__(self, name: str, unit: str, description: str) -> None:
        self.name = name
        self.unit = unit
        self.description = description

    def __repr__(self) -> str:
        return f"<Metric {self.name} [{self.unit}]>"


#: Every instrument, by the key :mod:`broker.instrumentation.otel.instruments` uses.
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("messaging.client.sent.messages", "{message}", "Messages published."),
        Metric(
            "messaging.client.operation.duration",
            "s",
            "How long a publish took, confirm wait included for confirming producers.",
        ),
        Metric(
            "messaging.client.consumed.messages",
            "{message}",
            "Messages delivered to a consumer (processed by callbacks or received).",
        ),
        Metric("messaging.process.duration", "s", "How long the consumer's callbacks took."),
        Metric(
            "brokerpool.consumer.redeliveries",
            "{message}",
            "Deliveries the broker marked redelivered.",
        ),
        Metric("brokerpool.consumer.acks", "{message}", "Messages acknowledged."),
        Metric(
            "brokerpool.consumer.rejects",
            "{message}",
            "Messages rejected (brokerpool.requeue says whether they were requeued).",
        ),
        Metric(
            "brokerpool.confirm.duration",
            "s",
            "Publisher confirm latency: from the start of the wait until the broker "
            "settled the publish (mode message), or the whole confirms() block (mode batch).",
        ),
        Metric("brokerpool.connection.connects", "{connect}", "Successful connects."),
        Metric(
            "brokerpool.connection.reconnects",
            "{connect}",
            "Connects after a lost link, by the error that lost it.",
        ),
        Metric(
            "brokerpool.connection.failovers",
            "{failover}",
            "Moves to another alternate broker.",
        ),
        Metric(
            "brokerpool.connection.heartbeat_timeouts",
            "{timeout}",
            "Links lost because the broker stopped answering heartbeats.",
        ),
        Metric(
            "brokerpool.connection.blocked.duration",
            "s",
            "Seconds connections spent blocked by the broker (connection.blocked).",
        ),
        Metric("brokerpool.pool.in_use", "{item}", "Pooled items lent out now."),
        Metric("brokerpool.pool.idle", "{item}", "Pooled items waiting to be lent."),
        Metric("brokerpool.pool.waiting", "{borrower}", "Borrowers waiting for an item."),
        Metric(
            "brokerpool.pool.wait.duration",
            "s",
            "How long a borrower waited for a pooled item (only acquires that had to wait).",
        ),
    )
}
