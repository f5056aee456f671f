"""What a publish checks and computes before it reaches a channel, for both producers.

:class:`broker.Producer` and :class:`broker.aio.Producer` take the same
arguments and must refuse the same mistakes with the same words: a keyword
that is no AMQP property, a TTL that is not a number of seconds, an unknown
``retry_policy`` key. They also encode a body the same way. This module is
that common part; it does no I/O.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any

from broker.errors import ConfigurationError, MessageNacked
from broker.messaging.serialization import COMPRESSION_HEADER, compress, dumps

__all__ = [
    "NACKED",
    "PROPERTY_KEYWORDS",
    "check_property_keywords",
    "encode",
    "expiration_ms",
    "retry_options",
]

#: The AMQP 0-9-1 basic properties ``publish`` takes as extra keywords (those it does
#: not name itself); any other keyword is a mistake, reported instead of dropped.
PROPERTY_KEYWORDS = frozenset(
    {"application_headers", "correlation_id", "reply_to", "message_id", "timestamp", "type",
     "user_id", "app_id", "cluster_id"}
)  # fmt: skip

#: What ``publish(retry=True)`` retries besides the policy's errors: a nack means
#: the broker did not take responsibility for the message, so like a lost
#: connection it is worth another try within the policy.
NACKED: tuple[type[BaseException], ...] = (MessageNacked,)

#: The keys ``publish(retry_policy=...)`` takes (``ensure``'s keywords).
_RETRY_KEYS = frozenset(
    {"max_retries", "interval_start", "interval_step", "interval_max", "errback", "timeout",
     "on_revive", "retry_errors", "policy"}
)  # fmt: skip


def check_property_keywords(properties: Mapping[str, Any]) -> None:
    """Refuse ``publish`` keywords that are neither parameters nor AMQP properties.

    Raises:
        ConfigurationError: naming each unknown keyword (with the closest
            property, when one is close) and listing the properties allowed.
    """
    if PROPERTY_KEYWORDS.issuperset(properties):
        return
    parts = []
    for key in sorted(set(properties) - PROPERTY_KEYWORDS):
        close = difflib.get_close_matches(key, sorted(PROPERTY_KEYWORDS), n=1)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise ConfigurationError(
        f"publish() got unknown keyword argument(s) {', '.join(parts)}; besides its "
        f"parameters it takes the AMQP properties {', '.join(sorted(PROPERTY_KEYWORDS))}"
    )


def expiration_ms(seconds: Any) -> str:
    """A TTL in seconds as AMQP's ``expiration``: whole milliseconds, as text.

    Raises:
        ConfigurationError: ``seconds`` is a str (AMQP's own millisecond text is
            not guessed at), not a number, negative, ``nan`` or infinite.
    """
    if isinstance(seconds, str):
        raise ConfigurationError(
            f"expiration is a TTL in seconds, a non-negative number; got the str {seconds!r} "
            f"(pass seconds as a number, e.g. 5 or 0.5; it is sent in milliseconds)"
        )
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
        # (not nan >= 0) is true too.
        raise ConfigurationError(
            f"expiration is a TTL in seconds, a non-negative number; got "
            f"{type(seconds).__name__} {seconds!r}"
        )
    if seconds == math.inf:
        raise ConfigurationError("expiration must be finite; leave it out for no TTL")
    return str(round(seconds * 1000))


def retry_options(retry_policy: Mapping[str, Any] | None) -> dict[str, Any]:
    """``ensure`` keywords for ``publish(retry=True, retry_policy=...)``, nacks retried too.

    Raises:
        ConfigurationError: a key ``ensure`` does not take.
    """
    if not retry_policy:
        return {"retry_errors": NACKED}
    unknown = set(retry_policy) - _RETRY_KEYS
    if unknown:
        raise ConfigurationError(
            f"unknown retry_policy key(s) {', '.join(sorted(map(repr, unknown)))}; "
            f"allowed: {', '.join(sorted(_RETRY_KEYS))}"
        )
    options = dict(retry_policy)
    options["retry_errors"] = tuple(options.get("retry_errors") or ()) + NACKED
    return options


def encode(
    body: Any,
    serializer: str | None,
    content_type: str | None,
    content_encoding: str | None,
    compression: str | None,
    headers: Mapping[str, Any] | None,
) -> tuple[bytes, dict[str, Any]]:
    """A publish's body as bytes and its content properties.

    Bytes go as they are (``application/data``), text given a content type
    is encoded, anything else goes through the serializer; then the optional
    compression, named in a header (never modifying the caller's headers).

    Raises:
        SerializationError: the serializer is unknown or cannot encode ``body``.
        ConfigurationError: the compression method is unknown.
    """
    if content_type is None:
        if type(body) is bytes and serializer is None:
            content_type, content_encoding = "application/data", "binary"
        else:
            content_type, content_encoding, body = dumps(body, serializer)
    elif isinstance(body, str):
        content_encoding = content_encoding or "utf-8"
        body = body.encode(content_encoding)
    elif content_encoding is None:
        content_encoding = "binary"
    properties: dict[str, Any] = {
        "content_type": content_type, "content_encoding": content_encoding
    }  # fmt: skip
    if compression:
        body, method = compress(body, compression)
        headers = {**(headers or {}), COMPRESSION_HEADER: method}
    if headers:
        properties["application_headers"] = headers
    return body, properties
