"""The AMQP 0-9-1 transport for asyncio (``amqp://``, ``pyamqp://``, ``amqps://``).

An :class:`asyncio.Protocol` (:mod:`~transports.amqp.aio.protocol`) cuts the
byte stream into frames and writes ours; py-amqp's frame codec
(:mod:`~transports.amqp.aio.frames`) turns frames into methods and messages
and back; :mod:`~transports.amqp.aio.connection` does the handshake, the
connection-level methods and heartbeats; :mod:`~transports.amqp.aio.channel`
is the channel contract of :mod:`transports.base_aio`.

Why py-amqp's codec: measured on this machine in one run (``python -m bench
--cases aio-codec``), py-amqp's ``frame_writer`` encodes a 100-byte
``basic.publish`` (method, header and body frames) about as fast as pamqp (the
codec under aiormq and aio-pika) or up to 1.6 times faster, and its
``frame_handler`` decodes a ``basic.deliver`` about 1.6 times faster; it is
already a dependency, and the synchronous transport's error translation
(:mod:`transports.amqp.errors`) applies to its exceptions unchanged. The
figures are in ``docs/asyncio.rst``.
"""
