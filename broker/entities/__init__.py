"""Exchanges, queues and bindings: declarative values that declare themselves on a channel."""
