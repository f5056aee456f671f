"""``kombu.compression``'s names (see :mod:`broker.messaging.compression`); re-exports only."""

from __future__ import annotations

from broker.messaging.compression import (
    compress,
    decompress,
    encoders,
    get_decoder,
    get_encoder,
    register,
)

__all__ = ["compress", "decompress", "encoders", "get_decoder", "get_encoder", "register"]
