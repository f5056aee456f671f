"""kombu's compression helpers: ``encoders``, ``get_encoder``, ``get_decoder``, ``register``.

The methods themselves are kept by :mod:`broker.messaging.serialization`, which
compresses and decompresses bodies on the way out and in; this module is the
view of that table that ``kombu.compression`` users call, with kombu's
argument orders. A method is named by the ``compression`` header value sent
with each message (``application/x-gzip``) or by an alias (``zlib``, ``gzip``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from broker.messaging.serialization import (
    compress,
    compression_codec,
    compression_methods,
    decompress,
    register_compression,
)

__all__ = ["compress", "decompress", "encoders", "get_decoder", "get_encoder", "register"]

Transform = Callable[[bytes], bytes]


def register(
    encoder: Transform,
    decoder: Transform,
    content_type: str,
    aliases: Iterable[str] | None = None,
) -> None:
    """Register a compression method (kombu's argument order).

    Args:
        encoder: compresses bytes.
        decoder: reverses ``encoder``.
        content_type: the ``compression`` header value naming the method.
        aliases: short names producers may use instead, e.g. ``["zstd"]``.
    """
    register_compression(content_type, encoder, decoder, aliases or ())


def encoders() -> list[str]:
    """Every registered compression method, by the header value naming it."""
    return compression_methods()


def get_encoder(method: str) -> tuple[Transform, str]:
    """The compressor of ``method`` (alias or header value) and the header value to send.

    Raises:
        ConfigurationError: ``method`` is not registered.
    """
    content_type, encoder, _ = compression_codec(method)
    return encoder, content_type


def get_decoder(method: str) -> Transform:
    """The decompressor of ``method`` (alias or header value).

    Raises:
        ConfigurationError: ``method`` is not registered.
    """
    return compression_codec(method)[2]
