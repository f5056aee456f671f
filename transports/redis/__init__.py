"""The ``redis://`` transport: AMQP's model in one Lua script on Redis (registered as
``transports.redis.transport:Transport``), and ``sentinel://`` on top of it
(``transports.redis.sentinel:Transport``).
"""
