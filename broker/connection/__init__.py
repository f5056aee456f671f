"""The :class:`~broker.connection.connection.Connection` façade and the collaborators it holds:
failover cycling, the heartbeat thread, lifecycle callbacks and the recovery record.
"""
