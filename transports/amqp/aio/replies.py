"""The requests of one asyncio AMQP channel waiting for their replies: :class:`ReplyLine`.

A synchronous method (``queue.declare`` ...) parks a future here when its
frame is written; the broker answers a channel's requests in order, so each
reply settles the oldest request. A request whose caller was cancelled stays
in line until its reply arrives: the reply is then consumed (and handed to the
request's ``orphaned`` callback, if it has one), so later replies still match.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any, NamedTuple

from transports.amqp.aio.frames import method_name

__all__ = ["Orphaned", "Reply", "ReplyLine"]

logger = logging.getLogger(__name__)

#: ``(method_sig, arguments, message)`` of a reply.
Reply = tuple[tuple[int, int], tuple[Any, ...], Any]
#: Called with a reply nobody waits for any more (its caller was cancelled).
Orphaned = Callable[[tuple[int, int], tuple[Any, ...], Any], None]


class _Request(NamedTuple):
    replies: frozenset[tuple[int, int]]
    future: asyncio.Future[Reply]
    orphaned: Orphaned | None


class ReplyLine:
    """Requests waiting for replies, oldest first."""

    __slots__ = ("_requests",)

    def __init__(self) -> None:
        self._requests: collections.deque[_Request] = collections.deque()

    def __len__(self) -> int:
        return len(self._requests)

    def expect(
        self, replies: frozenset[tuple[int, int]], orphaned: Orphaned | None = None
    ) -> asyncio.Future[Reply]:
        """Queue a request just written; its future gets the first of ``replies`` for it."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._requests.append(_Request(replies, future, orphaned))
        return future

    def settle(self, method_sig: tuple[int, int], args: tuple[Any, ...], msg: Any) -> bool:
        """Hand a reply to the oldest request; False when none was waiting."""
        requests = self._requests
        while requests:
            request = requests.popleft()
            if method_sig not in request.replies:
                logger.warning("unexpected %s while waiting for %s", method_name(method_sig),
                               "/".join(map(method_name, request.replies)))  # fmt: skip
                continue
            if not request.future.done():
                request.future.set_result((method_sig, args, msg))
            elif request.orphaned is not None:
                request.orphaned(method_sig, args, msg)
            return True
        return False

    def fail(self, error: Callable[[], BaseException]) -> bool:
        """Fail every waiting request with ``error()``; True if any caller was still waiting."""
        requests, self._requests = self._requests, collections.deque()
        told = False
        for request in requests:
            if not request.future.done():
                request.future.set_exception(error())
                told = True
        return told

    def __repr__(self) -> str:
        return f"<ReplyLine waiting={len(self._requests)}>"
