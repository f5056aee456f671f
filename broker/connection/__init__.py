"""The :class:`~broker.connection.connection.Connection` façade and the collaborators it holds:
failover over the alternates (:mod:`.failover`), the heartbeat thread (:mod:`.heartbeat`),
lifecycle callbacks (:mod:`.callbacks`) and the recovery record (:mod:`.recovery`).
"""
