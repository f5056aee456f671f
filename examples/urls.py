"""Broker URLs: defaults, alternates, query options, masking."""

from broker import ConfigurationError, Connection, parse_url

# Every part of a URL is optional; the transport fills in the defaults.
conn = Connection("amqp://")
assert conn.as_uri() == "amqp://guest:**@localhost:5672//"

# Each alternate gets its own scheme defaults: nothing leaks from the first.
conn = Connection("amqp://app:s3cret@rabbit-a:5673/orders;amqps://rabbit-b")
assert conn.as_uri() == "amqp://app:**@rabbit-a:5673/orders"
conn.maybe_switch_next()
assert conn.as_uri() == "amqps://guest:**@rabbit-b:5671//"

# Query options are validated and converted.
url = parse_url("amqp://h//?heartbeat=10&connect_timeout=2.5&ssl_cert_reqs=required")
assert url.options["heartbeat"] == 10.0
assert url.virtual_host == "/"

# A typo is an error that names the key and suggests the right one.
try:
    Connection("amqp://h//?hearbeat=10")
except ConfigurationError as exc:
    print(exc)
