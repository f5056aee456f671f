"""Messaging on top of channels: producers and publisher confirms, consumers and the consumer loop,
messages, serialization and simple queues.
"""
