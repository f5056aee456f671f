"""Registering a transport under a new name (and URL scheme)."""

import transports
from broker import Connection

# A transport is named by "package.module:Class" and imported on first use.
transports.register("inproc", "transports.memory.transport:Transport")

with Connection("inproc://") as conn:
    print(conn.transport.name, "via", conn.as_uri())

print(sorted(transports.available()))
