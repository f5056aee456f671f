"""Pool groups: one producer pool per broker, shared by every Connection with the same URL."""

import pools
from broker import Connection, Queue

conn = Connection("memory://")
orders = Queue("orders")
with pools.producers[conn].acquire(block=True, timeout=2) as producer:
    producer.publish({"order": 42}, routing_key="orders", declare=[orders])

# Another Connection object with the same URL and options gets the same pool.
assert pools.producers[Connection("memory://")] is pools.producers[conn]
pools.reset()
