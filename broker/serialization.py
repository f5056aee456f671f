"""``kombu.serialization``'s names (see :mod:`broker.messaging.serialization`); re-exports only."""

from __future__ import annotations

from broker.messaging.serialization import (
    disable_insecure_serializers,
    dumps,
    enable_insecure_serializers,
    loads,
    prepare_accept,
    register,
    registry,
    unregister,
)

__all__ = [
    "disable_insecure_serializers",
    "dumps",
    "enable_insecure_serializers",
    "loads",
    "prepare_accept",
    "register",
    "registry",
    "unregister",
]
