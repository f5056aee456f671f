"""The ``amqp://`` transport on py-amqp (registered as ``transports.amqp.transport:Transport``)."""
