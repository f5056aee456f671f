"""Redis URLs and transport options (checked before any connection is made)."""

from broker import ConfigurationError, Connection

# The path is the database number; no path (or "/") means db 0. Redis has no
# default login: without a password the connection does not authenticate.
conn = Connection("redis://cache-1:6379/2")
assert conn.as_uri() == "redis://cache-1:6379/2"

# rediss:// turns TLS on (same default port, 6379); ssl_* query keys tune it.
conn = Connection("rediss://app:s3cret@cache-1/0?ssl_ca_certs=/etc/ssl/certs/ca.pem")
assert conn.as_uri() == "rediss://app:**@cache-1:6379/0"

# Several URLs: fail over between servers (each one is a separate store).
conn = Connection("redis://cache-1/0;redis://cache-2/0")
assert conn.as_uri() == "redis://cache-1:6379/0"

# A typo in a transport option is refused, with a suggestion, as the
# Connection is made; so is a path that is not a database number.
try:
    Connection("redis://cache-1/0", transport_options={"visibility_timout": 600})
except ConfigurationError as exc:
    print(exc)  # broker 'redis://cache-1/0': unknown redis transport option(s) ...
