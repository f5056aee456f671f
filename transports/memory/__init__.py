"""The embedded ``memory://`` broker (registered as ``transports.memory.transport:Transport``)."""
