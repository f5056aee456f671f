"""RabbitMQ's queue types and what each one requires of a declaration.

A queue's type is chosen when it is declared, with the ``x-queue-type``
argument: ``classic`` (the broker's default), ``quorum`` (replicated with
Raft across a cluster; a publish is confirmed once a majority of the members
stored it) or ``stream`` (an append-only log read from an offset).
RabbitMQ refuses quorum and stream declarations that are not durable, are
exclusive or auto-delete, are server-named or ask for priorities, with a
406 that closes the channel; :func:`type_arguments` refuses them first, when
the :class:`~broker.entities.queue.Queue` is made, with a
:class:`~broker.errors.ConfigurationError` that says what to change.

Two arguments belong to quorum queues only: ``x-delivery-limit`` (after that
many redeliveries a message is dropped or dead-lettered) and
``x-dead-letter-strategy`` (``at-most-once``, the default, or
``at-least-once``, which RabbitMQ honours only with ``x-overflow:
reject-publish`` and otherwise silently replaces with at-most-once).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.errors import ConfigurationError

__all__ = ["DEAD_LETTER_STRATEGIES", "QUEUE_TYPES", "REPLICATED_TYPES", "type_arguments"]

#: The values of ``Queue(queue_type=...)``; ``None`` leaves the choice to the broker.
QUEUE_TYPES = ("classic", "quorum", "stream")
#: Types whose contents live on several cluster members and outlive any one connection.
REPLICATED_TYPES = frozenset({"quorum", "stream"})
#: The values of ``Queue(dead_letter_strategy=...)``.
DEAD_LETTER_STRATEGIES = ("at-most-once", "at-least-once")


def type_arguments(
    name: str,
    queue_type: str | None,
    *,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
    queue_arguments: Mapping[str, Any] | None,
    max_priority: int | None,
    delivery_limit: int | None,
    dead_letter_strategy: str | None,
) -> tuple[str | None, dict[str, Any]]:
    """Check a queue's type against its other settings; return the type and its arguments.

    Args:
        name: the queue name (``''`` for a server-named queue).
        queue_type: ``Queue(queue_type=...)``.
        durable, exclusive, auto_delete: the queue's flags.
        queue_arguments: ``Queue(queue_arguments=...)``, which may name the
            type itself as ``x-queue-type``.
        max_priority: ``Queue(max_priority=...)``.
        delivery_limit, dead_letter_strategy: the quorum-only options.

    Returns:
        ``(type, arguments)``: the type in effect (``None`` when neither
        ``queue_type`` nor ``x-queue-type`` names one) and the ``x-``
        arguments that carry ``queue_type``, ``delivery_limit`` and
        ``dead_letter_strategy`` (empty when none is given).

    Raises:
        ConfigurationError: an unknown type or strategy, a type that
            contradicts ``x-queue-type``, a quorum or stream queue that RabbitMQ
            would refuse, or a quorum-only option on another type.
    """
    shown = f"queue {name!r}"
    given = dict(queue_arguments or {})
    if queue_type is not None and queue_type not in QUEUE_TYPES:
        raise ConfigurationError(
            f"{shown}: queue_type must be one of {', '.join(map(repr, QUEUE_TYPES))} "
            f"(or None for the broker's default), got {queue_type!r}"
        )
    in_arguments = given.get("x-queue-type")
    if queue_type is not None and in_arguments is not None and in_arguments != queue_type:
        raise ConfigurationError(
            f"{shown}: queue_type={queue_type!r} contradicts queue_arguments "
            f"{{'x-queue-type': {in_arguments!r}}}; give the type once"
        )
    kind = queue_type if queue_type is not None else in_arguments
    if kind in REPLICATED_TYPES:
        _check_replicated(shown, kind, name, durable, exclusive, auto_delete)
        if max_priority is not None or "x-max-priority" in given:
            raise ConfigurationError(
                f"{shown}: a {kind} queue has no priorities (RabbitMQ refuses x-max-priority "
                f"for it); drop max_priority or use a classic queue"
            )
    arguments: dict[str, Any] = {}
    if queue_type is not None:
        arguments["x-queue-type"] = queue_type
    if delivery_limit is not None:
        _only_quorum(shown, kind, "delivery_limit")
        if (
            isinstance(delivery_limit, bool)
            or not isinstance(delivery_limit, int)
            or delivery_limit < 0
        ):
            raise ConfigurationError(
                f"{shown}: delivery_limit must be an integer >= 0, got {delivery_limit!r}"
            )
        arguments["x-delivery-limit"] = delivery_limit
    if dead_letter_strategy is not None:
        _only_quorum(shown, kind, "dead_letter_strategy")
        if dead_letter_strategy not in DEAD_LETTER_STRATEGIES:
            raise ConfigurationError(
                f"{shown}: dead_letter_strategy must be one of "
                f"{', '.join(map(repr, DEAD_LETTER_STRATEGIES))}, got {dead_letter_strategy!r}"
            )
        if dead_letter_strategy == "at-least-once" and given.get("x-overflow") != "reject-publish":
            raise ConfigurationError(
                f"{shown}: dead_letter_strategy='at-least-once' needs queue_arguments "
                f"{{'x-overflow': 'reject-publish'}}; without it RabbitMQ silently dead-letters "
                f"at most once"
            )
        arguments["x-dead-letter-strategy"] = dead_letter_strategy
    return kind, arguments


def _check_replicated(
    shown: str, kind: str, name: str, durable: bool, exclusive: bool, auto_delete: bool
) -> None:
    if not name:
        raise ConfigurationError(
            f"a {kind} queue cannot be server-named (RabbitMQ refuses it): give it a name"
        )
    wrong = [
        flag
        for flag, bad in (
            ("durable=False", not durable),
            ("exclusive=True", exclusive),
            ("auto_delete=True", auto_delete and not exclusive),
        )
        if bad
    ]
    if wrong:
        raise ConfigurationError(
            f"{shown}: a {kind} queue must be durable, not exclusive and not auto-delete "
            f"(RabbitMQ refuses the declaration otherwise); got {', '.join(wrong)}"
        )


def _only_quorum(shown: str, kind: str | None, option: str) -> None:
    if kind != "quorum":
        what = f"a {kind} queue" if kind is not None else "a queue without queue_type"
        raise ConfigurationError(
            f"{shown}: {option} is an option of quorum queues only, not of {what}; "
            f"pass queue_type='quorum'"
        )
