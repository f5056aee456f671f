"""Helpers shared by several transports: RabbitMQ's reply texts, message property checks and TLS
settings.
"""
