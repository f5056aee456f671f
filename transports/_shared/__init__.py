"""Helpers shared by several transports: RabbitMQ's reply texts, message property checks, TLS
settings and the write-buffering of synchronous channels.
"""
