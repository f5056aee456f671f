"""``kombu.mixins``' names (see :mod:`broker.messaging.mixins`); re-exports only."""

from __future__ import annotations

from broker.messaging.mixins import ConsumerMixin, ConsumerProducerMixin

__all__ = ["ConsumerMixin", "ConsumerProducerMixin"]
