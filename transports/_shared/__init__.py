"""Helpers shared by several transports: RabbitMQ's reply texts, message property copies, the
limits every transport enforces on a publish, TLS settings and the write-buffering of
synchronous channels.
"""
