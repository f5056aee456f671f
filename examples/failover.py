"""Failover and retries: a dead broker first, a live one second."""

from broker import Connection, OperationalError

attempts = []
conn = Connection(
    # Nothing listens on port 1; memory:// stands in for a second broker.
    "amqp://guest:guest@127.0.0.1:1//;memory://",
    connect_timeout=1,
    on_connect=lambda c: print("connected to", c.as_uri()),
)
conn.ensure_connection(
    errback=lambda exc, interval: attempts.append((str(exc), interval)),
    max_retries=3,
    interval_start=0.1,
)
assert conn.transport.name == "memory"
assert attempts[0][1] == 0.0  # no sleep before trying the next alternate

# When the budget runs out, OperationalError says what was tried.
lonely = Connection("amqp://guest:guest@127.0.0.1:1//", connect_timeout=1)
try:
    lonely.ensure_connection(max_retries=1, interval_start=0.1)
except OperationalError as exc:
    print(exc)  # could not connect to amqp://guest:**@127.0.0.1:1// after 2 attempts ...
conn.close()
