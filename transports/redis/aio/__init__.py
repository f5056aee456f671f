"""``redis://`` and ``rediss://`` for asyncio, on ``redis.asyncio`` (registered as
``transports.redis.aio.transport:AsyncTransport``).

The same broker script, key layout, leases and guarantees as the synchronous
transport (:mod:`transports.redis.transport`): a synchronous producer and an
asyncio consumer on one Redis database and key prefix see each other.
``link.py`` holds the redis.asyncio clients, ``connection.py`` the delivery
pump and the lease keeper, ``channel.py`` and ``consuming.py`` the channels.
"""
