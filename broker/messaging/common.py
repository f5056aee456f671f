"""The helpers of ``kombu.common`` that applications call, on brokerpool's classes.

* :func:`maybe_declare` -- declare once per connection, optionally retrying;
* :class:`Broadcast` -- a queue of its own per consumer on a fanout exchange;
* :func:`eventloop`, :func:`drain_consumer`, :func:`itermessages` -- generators
  over ``drain_events``;
* :func:`send_reply`, :func:`collect_replies` -- the two halves of an RPC reply;
* :func:`ignore_errors` -- swallow connection and channel errors during cleanup;
* :func:`uuid` -- a random UUID as text.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import uuid as _uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

from broker.entities.base import maybe_declare as _declare_once
from broker.entities.exchange import Exchange
from broker.entities.owner import ChannelOwner, owner_of
from broker.entities.queue import Queue
from broker.errors import ConfigurationError
from broker.messaging.message import Message
from broker.messaging.serialization import registry

if TYPE_CHECKING:
    from broker.connection.connection import Connection
    from broker.messaging.consumer import Consumer
    from broker.messaging.producer import Producer
    from transports.base import Channel

__all__ = [
    "Broadcast",
    "HasErrorClasses",
    "collect_replies",
    "drain_consumer",
    "eventloop",
    "ignore_errors",
    "itermessages",
    "maybe_declare",
    "send_reply",
    "uuid",
]

R = TypeVar("R")
#: ``callback(body, message)``, as a Consumer calls it.
Callback = Callable[[Any, Message], Any]


def uuid() -> str:
    """A random (version 4) UUID as text, e.g. for ``correlation_id`` or a queue name."""
    return str(_uuid.uuid4())


# -- declaring ----------------------------------------------------------------------------


def maybe_declare(
    entity: Exchange | Queue, channel: Any = None, retry: bool = False, **retry_policy: Any
) -> bool:
    """Declare ``entity`` unless its connection already declared it (kombu's signature).

    Args:
        entity: an exchange or queue; bound in place to ``channel`` if unbound.
        channel: a channel or connection; defaults to the entity's own.
        retry: on a recoverable error reconnect (failing over) and declare
            again, per ``retry_policy`` (the keywords of
            :meth:`broker.Connection.ensure`); the entity is then declared on
            its own channel, revived after a reconnect.

    Returns:
        True if a declaration was sent, False if it was cached or ``no_declare``.

    Raises:
        NotBoundError: neither ``entity`` nor ``channel`` names a channel.
        ConfigurationError: ``retry`` for a channel that no Connection opened.
    """
    if not retry:
        return _declare_once(entity, channel)
    if channel is not None:
        entity.maybe_bind(channel)
    owner = owner_of(entity.channel)
    if owner is None:
        raise ConfigurationError(
            f"maybe_declare(retry=True) needs {entity!r} bound to a channel of a broker.Connection"
        )
    declare: Callable[[Exchange | Queue], bool] = _declare_once
    return owner.ensure(entity, declare, **retry_policy)(entity)


class Broadcast(Queue):
    """A queue of its own for every consumer of a fanout exchange (kombu's ``Broadcast``).

    Each instance gets a unique queue name (``bcast.<uuid>``) unless ``queue``
    names one; the queue is auto-deleted by default.

    Args:
        name: the fanout exchange's name (also the queue's alias).
        queue: a queue name to use instead of a unique one.
        unique: add a unique suffix even to ``queue``.
        auto_delete: delete the queue when its last consumer goes.
        exchange: an exchange to use instead of ``Exchange(name, 'fanout')``.
        alias: the queue's alias (default: ``name``).
        **kwargs: the other :class:`~broker.entities.queue.Queue` arguments.

    Raises:
        ConfigurationError: neither ``name`` nor ``exchange`` is given.
    """

    def __init__(
        self,
        name: str | None = None,
        queue: str | None = None,
        unique: bool = False,
        auto_delete: bool = True,
        exchange: Exchange | None = None,
        alias: str | None = None,
        **kwargs: Any,
    ) -> None:
        if exchange is None:
            if not name:
                raise ConfigurationError(
                    "Broadcast needs the fanout exchange's name, or an exchange"
                )
            # Declared as kombu declares it (durable, not auto-delete), so the
            # two libraries can share one broadcast exchange.
            exchange = Exchange(name, type="fanout")
        queue = f"{queue or 'bcast'}.{uuid()}" if unique else queue or f"bcast.{uuid()}"
        super().__init__(queue, exchange, alias=alias or name, auto_delete=auto_delete, **kwargs)


# -- draining -------------------------------------------------------------------------------


def eventloop(
    conn: ChannelOwner,
    limit: int | None = None,
    timeout: float | None = None,
    ignore_timeouts: bool = False,
) -> Iterator[None]:
    """``conn.drain_events(timeout)`` once per step, ``limit`` times or forever.

    A step that times out raises :class:`TimeoutError` (``socket.timeout``)
    unless ``ignore_timeouts``, which makes it a step like any other.
    """
    steps: Iterable[int] = range(limit) if limit else itertools.count()
    for _ in steps:
        try:
            conn.drain_events(timeout=timeout)
        except TimeoutError:
            if timeout and not ignore_timeouts:
                raise
        yield None


def drain_consumer(
    consumer: Consumer,
    limit: int = 1,
    timeout: float | None = None,
    callbacks: Iterable[Callback] | None = None,
) -> Iterator[tuple[Any, Message]]:
    """Consume for ``limit`` waits of up to ``timeout`` each; yield ``(body, message)``.

    ``callbacks`` are called too, after the message is queued for yielding.
    Timeouts end a wait, not the generator. The consumer consumes while the
    generator runs and is cancelled when it ends.

    Raises:
        ConfigurationError: the consumer's channel belongs to no Connection.
    """
    conn = consumer.connection
    if conn is None:
        raise ConfigurationError(f"{consumer!r} has no broker.Connection to drain events from")
    received: collections.deque[tuple[Any, Message]] = collections.deque()

    def collect(body: Any, message: Message) -> None:
        received.append((body, message))

    consumer.callbacks = [collect, *(callbacks or ())]
    with consumer:
        for _ in eventloop(conn, limit=limit, timeout=timeout, ignore_timeouts=True):
            while received:
                yield received.popleft()


def itermessages(
    conn: Connection,
    channel: Channel | None,
    queue: Queue,
    limit: int = 1,
    timeout: float | None = None,
    callbacks: Iterable[Callback] | None = None,
    **kwargs: Any,
) -> Iterator[tuple[Any, Message]]:
    """:func:`drain_consumer` over a new consumer of ``queue`` (``kwargs`` are the Consumer's)."""
    consumer = conn.Consumer(queues=[queue], channel=channel, **kwargs)
    return drain_consumer(consumer, limit=limit, timeout=timeout, callbacks=callbacks)


# -- replies -------------------------------------------------------------------------------


def send_reply(
    exchange: Exchange | str,
    req: Message,
    msg: Any,
    producer: Producer,
    retry: bool = False,
    retry_policy: Mapping[str, Any] | None = None,
    **props: Any,
) -> None:
    """Publish ``msg`` as the reply to ``req``: to its ``reply_to``, with its ``correlation_id``.

    The reply is encoded with the serializer the request came in (JSON when
    the request's content type has none). ``props`` are more
    :meth:`~broker.Producer.publish` keywords and win over these.

    Raises:
        ConfigurationError: ``req`` has no ``reply_to`` property.
    """
    reply_to = req.properties.get("reply_to")
    if not reply_to:
        raise ConfigurationError(f"cannot reply to {req!r}: it has no reply_to property")
    options: dict[str, Any] = {
        "routing_key": reply_to,
        "correlation_id": req.properties.get("correlation_id"),
        "serializer": registry.type_to_name.get(req.content_type or "", None),
    }
    options.update(props)
    producer.publish(msg, exchange=exchange, retry=retry, retry_policy=retry_policy, **options)


def collect_replies(
    conn: Connection, channel: Channel | None, queue: Queue, *args: Any, **kwargs: Any
) -> Iterator[Any]:
    """Yield the bodies of the replies arriving on ``queue`` (see :func:`itermessages`).

    Consumes with ``no_ack=True`` unless told otherwise, in which case each
    reply is acked before it is yielded.
    """
    no_ack = kwargs.setdefault("no_ack", True)
    for body, message in itermessages(conn, channel, queue, *args, **kwargs):
        if not no_ack:
            message.ack()
        yield body


# -- errors ---------------------------------------------------------------------------------


class HasErrorClasses(Protocol):
    """Anything with kombu's error tuples: a :class:`broker.Connection` (or a lease of one)."""

    @property
    def connection_errors(self) -> tuple[type[BaseException], ...]:
        """Errors meaning the connection failed."""
        ...

    @property
    def channel_errors(self) -> tuple[type[BaseException], ...]:
        """Errors meaning a channel failed."""
        ...


@overload
def ignore_errors(conn: HasErrorClasses) -> contextlib.AbstractContextManager[None]: ...


@overload
def ignore_errors(
    conn: HasErrorClasses, fun: Callable[..., R], *args: Any, **kwargs: Any
) -> R | None: ...


def ignore_errors(
    conn: HasErrorClasses, fun: Callable[..., R] | None = None, *args: Any, **kwargs: Any
) -> R | contextlib.AbstractContextManager[None] | None:
    """Ignore ``conn``'s connection and channel errors (for cleanup only).

    ``ignore_errors(conn, fun, *args)`` calls ``fun`` and returns its result,
    or ``None`` after such an error; ``with ignore_errors(conn):`` does the
    same for a block.
    """
    errors = conn.connection_errors + conn.channel_errors
    if fun is None:
        return contextlib.suppress(*errors)
    with contextlib.suppress(*errors):
        return fun(*args, **kwargs)
    return None
